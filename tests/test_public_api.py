"""The public API: what users and plugin authors may import, and the proof that a plugin needs nothing else.

``plugins/`` (the built-in plugins) and ``examples/`` (scripts and the example plugin package) are written
as a third party would write them, so they may import only public names: a name in the ``__all__`` of a
module in :data:`PUBLIC_MODULES` (the list docs/api.md presents), or such a module itself. Nor do they
import the built-in plugins' modules (``mmfuse_plugins``): components are reached by registered name.
"""

from __future__ import annotations

import ast
import functools
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import mmfuse
import mmfuse.errors

REPO = Path(__file__).resolve().parents[1]

# The public modules; every other mmfuse module is internal and may change without notice.
PUBLIC_MODULES = (
    "mmfuse",
    "mmfuse.errors",
    "mmfuse.data",
    "mmfuse.data.formats.derm7pt",
    "mmfuse.data.formats.milk10k",
    "mmfuse.data.formats.paired_csv",
    "mmfuse.data.synth",
    "mmfuse.evaluation",
    "mmfuse.hub",
    "mmfuse.metadata",
    "mmfuse.pipeline",
    "mmfuse.presets",
    "mmfuse.registry",
    "mmfuse.tracking",
    "mmfuse.training",
)
THIRD_PARTY_CODE = ("plugins", "examples")
BUILTIN_PLUGINS = "mmfuse_plugins"  # loaded by name through the registry, never imported by a plugin


@functools.cache
def public_names(module: str) -> frozenset[str]:
    return frozenset(importlib.import_module(module).__all__)


def _is_mmfuse(module: str) -> bool:
    return module.split(".")[0] in ("mmfuse", BUILTIN_PLUGINS)


def _dotted(node: ast.expr) -> list[str] | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    return [node.id, *reversed(parts)] if isinstance(node, ast.Name) else None


def _check_name(module: str, name: str) -> str | None:
    """``None`` if ``module.name`` is public, else why not (``module`` is a public module)."""
    if f"{module}.{name}" in PUBLIC_MODULES or name in public_names(module):
        return None
    return f"{module}.{name} is not public (not in {module}.__all__)"


def violations(source: str) -> list[str]:
    """Every import of (or attribute reached through) a non-public mmfuse name in ``source``."""
    tree = ast.parse(source)
    problems: list[str] = []
    bound: dict[str, str] = {}  # a local name -> the public mmfuse module it is bound to
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if not _is_mmfuse(alias.name):
                    continue
                if alias.name not in PUBLIC_MODULES:
                    problems.append(f"import {alias.name}: not a public module")
                elif alias.asname:
                    bound[alias.asname] = alias.name
                else:
                    bound["mmfuse"] = "mmfuse"
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and _is_mmfuse(node.module or ""):
            if node.module not in PUBLIC_MODULES:
                problems.append(f"from {node.module} import ...: not a public module")
                continue
            for alias in node.names:
                problem = _check_name(node.module, alias.name)
                if problem:
                    problems.append(problem)
                elif f"{node.module}.{alias.name}" in PUBLIC_MODULES:
                    bound[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    for node in ast.walk(tree):
        parts = _dotted(node) if isinstance(node, ast.Attribute) else None
        if not parts or parts[0] not in bound:
            continue
        module = bound[parts[0]]
        for name in parts[1:]:  # walk down public modules; the first other name must be public
            problem = _check_name(module, name)
            if problem:
                problems.append(problem)
            if f"{module}.{name}" not in PUBLIC_MODULES:
                break
            module = f"{module}.{name}"
    return sorted(set(problems))


def third_party_files() -> list[Path]:
    return sorted(path for folder in THIRD_PARTY_CODE for path in (REPO / folder).rglob("*.py"))


def test_plugins_and_examples_import_only_public_names():
    files = third_party_files()
    assert any(path.parent.name == "mmfuse_example_plugin" for path in files)
    found = {
        str(path.relative_to(REPO)): problems
        for path in files
        if (problems := violations(path.read_text(encoding="utf-8")))
    }
    assert found == {}


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from mmfuse.attention import spatial_attention", ["not a public module"]),
        ("import mmfuse.runtime", ["not a public module"]),
        ("from mmfuse.data import images", ["mmfuse.data.images is not public"]),
        ("from mmfuse import UsageError", ["mmfuse.UsageError is not public"]),
        ("import mmfuse\nmmfuse.training.rundir.RunLock", ["mmfuse.training.rundir is not public"]),
        ("import mmfuse\nx = mmfuse.data.images.open_rgb", ["mmfuse.data.images is not public"]),
        ("import mmfuse.data as d\nd.split.SPLIT_NAMES", ["mmfuse.data.split is not public"]),
        ("from mmfuse import spatial_attention, data\ndata.SPLIT_NAMES", []),
        ("import mmfuse\n@mmfuse.hookimpl\ndef f(): mmfuse.errors.DataError, mmfuse.FusionBlock.forward", []),
        ("from mmfuse_plugins.fusionm4net import SecondStage", ["not a public module"]),
        ("from mmfuse.data.formats.derm7pt import load_release\nimport mmfuse_example_plugin", []),
    ],
)
def test_the_check_tells_public_from_internal_names(source, expected):
    found = violations(source)
    assert len(found) == len(expected) and all(e in f for e, f in zip(expected, found, strict=True)), found


def test_every_public_name_exists():
    for module in PUBLIC_MODULES:
        for name in public_names(module):
            assert getattr(importlib.import_module(module), name, None) is not None, f"{module}.{name}"


def test_the_type_checking_imports_are_the_lazy_export_table():
    """IDEs read the TYPE_CHECKING block, the interpreter the table: they must name the same objects."""
    tree = ast.parse((REPO / "mmfuse" / "__init__.py").read_text(encoding="utf-8"))
    block = next(n for n in tree.body if isinstance(n, ast.If) and ast.unparse(n.test) == "TYPE_CHECKING")
    imported = {alias.name: node.module for node in block.body for alias in node.names}
    assert imported == mmfuse._EXPORTS
    assert mmfuse.__all__ == ["__version__", *mmfuse._EXPORTS]


def test_the_top_level_keeps_only_the_exceptions_every_caller_catches():
    exceptions = {
        n
        for n in mmfuse.__all__
        if isinstance(getattr(mmfuse, n), type) and issubclass(getattr(mmfuse, n), BaseException)
    }
    assert exceptions == {"MmfuseError", "UnknownNameError", "ModelNotFoundError"}
    for name in exceptions:
        assert getattr(mmfuse, name) is getattr(mmfuse.errors, name)


@pytest.mark.parametrize(
    ("old", "home"),
    [
        ("DataError", "mmfuse.errors.DataError"),
        ("ConfigError", "mmfuse.errors.RunConfigError"),
        ("InvalidConfigError", "mmfuse.errors.ModelConfigError"),
        ("DatasetFormat", "mmfuse.data.DatasetFormat"),
        ("list_fusions", "mmfuse.registry.list_fusions"),
        ("create_encoder", "mmfuse.registry.create_encoder"),
    ],
)
def test_a_name_public_in_0_1_0_still_resolves_with_a_warning_naming_its_home(old, home):
    """Code written against 0.1.0 (``except mmfuse.DataError``, ``mmfuse.list_fusions()``) keeps working until 0.3."""
    module, _, name = home.rpartition(".")
    with pytest.warns(DeprecationWarning, match=home.replace(".", r"\.")):
        value = getattr(mmfuse, old)
    assert value is getattr(importlib.import_module(module), name)
    assert old not in mmfuse.__all__


def test_the_renamed_configuration_errors_resolve_from_mmfuse_errors():
    with pytest.warns(DeprecationWarning, match="RunConfigError"):
        assert mmfuse.errors.ConfigError is mmfuse.errors.RunConfigError
    with pytest.raises(AttributeError):
        mmfuse.errors.NoSuchError  # noqa: B018


def test_importing_mmfuse_and_listing_its_names_imports_no_torch():
    code = "import sys, mmfuse; dir(mmfuse); mmfuse.__all__; mmfuse.errors.DataError; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_docs_present_every_public_module():
    docs = (REPO / "docs" / "api.md").read_text(encoding="utf-8")
    for module in PUBLIC_MODULES:
        assert f"`{module}`" in docs, module
    for name in mmfuse.__all__:
        assert f"`{name}`" in docs, name
