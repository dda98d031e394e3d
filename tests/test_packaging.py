"""What users install: the wheel, built by the release procedure from a clean copy and installed without -e.

Every other test imports the editable checkout, which hides a wheel that lacks a module. Here the steps of
docs/release.md up to the upload run on a copy of the files git knows (tracked and untracked-but-not-ignored,
as they are on disk), the wheel goes into a fresh virtual environment that borrows the development
environment's third-party packages (torch is not installed twice) but cannot see the checkout, and the
package is used from a directory outside the source tree.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import time
import zipfile
from pathlib import Path

import pytest
import torch
from docs_blocks import parse

import mmfuse
from mmfuse.registry import PRESETS

REPO = Path(__file__).resolve().parents[1]
RELEASE_DOC = REPO / "docs" / "release.md"
# The source folder of each top-level package in the wheel (pyproject.toml's package-dir).
PACKAGE_DIRS = {"mmfuse": "mmfuse", "mmfuse_plugins": "plugins"}
TINY_MODEL = {"primary": "test_convnext", "auxiliary": "test_efficientnet", "img_size": 32}


def _run(args: list[str], *, cwd: Path, env: dict | None = None, timeout: float = 300) -> str:
    done = subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, (
        f"{args} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    )
    return done.stdout


def _clean_copy(destination: Path) -> Path:
    """The files git would commit, as they are now: what a fresh clone holds once this work is committed."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=False,
    )
    if listed.returncode != 0:
        pytest.skip("not a git checkout: the clean copy is made from git's file list")
    for name in filter(None, listed.stdout.decode().split("\0")):
        source = REPO / name
        if source.is_file():  # a file deleted but not yet committed is not copied
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)
    return destination


def _release_build_block() -> str:
    """docs/release.md's build-and-check block, run offline (the environment's setuptools)."""
    (block,) = [b for b in parse(RELEASE_DOC, "docs/release.md") if b.skip and "test_packaging" in b.skip]
    assert "python -m build" in block.code and "twine check" in block.code
    return block.code.replace("python -m build", "python -m build --no-isolation")


def _borrowed_packages(destination: Path) -> Path:
    """The development environment's site-packages without mmfuse: links to everything but the checkout.

    Its editable install (a finder started by a .pth file, and dist-info) and the example plugin's are left
    out; a .pth line that names this folder adds it to sys.path without running any .pth inside it.
    """
    destination.mkdir()
    for folder in dict.fromkeys(sysconfig.get_paths()[key] for key in ("purelib", "platlib")):
        for entry in Path(folder).iterdir():
            name = entry.name.lower().replace("-", "_")
            if name.startswith(("mmfuse", "__editable__", "__pycache__")) or name.endswith(".pth"):
                continue
            if not (destination / entry.name).exists():
                (destination / entry.name).symlink_to(entry)
    return destination


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> dict:
    """The distributions built as docs/release.md says, and the wheel installed in a fresh venv."""
    tmp = tmp_path_factory.mktemp("packaging")
    source = _clean_copy(tmp / "src")
    tools = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    tools.pop("PYTHONPATH", None)
    _run(["bash", "-e", "-o", "pipefail", "-c", _release_build_block()], cwd=source, env=tools)
    assert len(list((source / "dist").glob("mmfuse-*.tar.gz"))) == 1
    (wheel,) = (source / "dist").glob("mmfuse-*.whl")
    # The same build without the sdist in between: what an editable checkout would have packaged.
    shutil.rmtree(source / "build", ignore_errors=True)
    _run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(tmp / "direct"), "."],
        cwd=source,
    )
    (direct,) = (tmp / "direct").glob("*.whl")

    venv = tmp / "venv"
    # No pip of its own: ensurepip's setuptools would shadow the borrowed one torch requires; the borrowed pip
    # runs with this venv's interpreter, so it installs here.
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=tmp)
    python = str(venv / "bin" / "python")
    site = Path(
        _run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=tmp).strip()
    )
    (site / "_borrowed_packages.pth").write_text(f"{_borrowed_packages(tmp / 'borrowed')}\n")
    # Not --no-deps: with no index, pip must find every declared dependency already satisfied.
    install = [python, "-m", "pip", "install", "--no-index", "--no-cache-dir", "--disable-pip-version-check"]
    _run([*install, str(wheel)], cwd=tmp)
    outside = tmp / "elsewhere"
    outside.mkdir()
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")},
        "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}",
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
        "MPLBACKEND": "Agg",
    }
    return {"source": source, "wheel": wheel, "direct": direct, "site": site, "cwd": outside, "env": env}


def _in_venv(release: dict, *args: str, timeout: float = 300) -> str:
    started = time.perf_counter()
    try:
        return _run(list(args), cwd=release["cwd"], env=release["env"], timeout=timeout)
    finally:
        print(f"{time.perf_counter() - started:6.1f}s {' '.join(args)[:80]}")  # shown with -s


def _wheel_files(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist() if ".dist-info/" not in name}


@pytest.mark.slow
def test_the_wheel_holds_every_file_of_the_package_folders(release):
    """Every module and every data file under mmfuse/ and plugins/: nothing is listed by hand."""
    names = set(_wheel_files(release["wheel"]))
    for package, folder in PACKAGE_DIRS.items():
        root = release["source"] / folder
        files = {
            f"{package}/{path.relative_to(root).as_posix()}" for path in root.rglob("*") if path.is_file()
        }
        assert any(name.endswith("/__init__.py") for name in files), folder
        assert not files - names, f"missing from the wheel: {sorted(files - names)}"
    packages = {name.rpartition("/")[0] for name in names if name.endswith("/__init__.py")}
    assert {"mmfuse/hub", "mmfuse/runtime", "mmfuse/cli", "mmfuse_plugins"} <= packages


@pytest.mark.slow
def test_the_sdist_builds_the_same_wheel_as_the_tree(release):
    assert _wheel_files(release["wheel"]) == _wheel_files(release["direct"])


@pytest.mark.slow
def test_the_wheel_metadata_is_complete(release):
    with zipfile.ZipFile(release["wheel"]) as archive:
        metadata = archive.read(f"mmfuse-{mmfuse.__version__}.dist-info/METADATA").decode()
        licence = archive.read(f"mmfuse-{mmfuse.__version__}.dist-info/licenses/LICENSE").decode()
    assert release["wheel"].name == f"mmfuse-{mmfuse.__version__}-py3-none-any.whl"
    assert f"Version: {mmfuse.__version__}\n" in metadata and "License-Expression: Apache-2.0" in metadata
    assert (
        "Requires-Python: >=3.10" in metadata
        and "Classifier: Programming Language :: Python :: 3.10" in metadata
    )
    assert "Project-URL: " in metadata and "Apache License" in licence


@pytest.mark.slow
def test_the_installed_package_is_the_wheel_not_the_checkout(release):
    where = json.loads(
        _in_venv(
            release,
            "python",
            "-c",
            "import json, mmfuse, mmfuse_plugins, importlib.metadata as m; "
            "print(json.dumps([mmfuse.__file__, mmfuse_plugins.__file__, m.version('mmfuse'), mmfuse.__version__]))",
        )
    )
    site = str(release["site"])
    assert where[0].startswith(site) and where[1].startswith(site), where
    assert where[2] == where[3] == mmfuse.__version__


@pytest.mark.slow
def test_the_command_line_runs(release):
    assert _in_venv(release, "mmfuse", "--version").split() == ["mmfuse", mmfuse.__version__]
    formats = _in_venv(release, "mmfuse", "data", "formats")
    assert "derm7pt" in formats and "paired_csv" in formats and "[mmfuse_plugins.dataset_formats]" in formats


BUILD_EVERY_PRESET = """
import hashlib, json, sys, torch, mmfuse
shapes = {}
for name in mmfuse.list_presets():
    with torch.device("meta"):  # full-size models, without allocating their weights
        model = mmfuse.build_model(name, pretrained=False)
    shapes[name] = hashlib.sha256(json.dumps([[k, list(v.shape)] for k, v in model.state_dict().items()]).encode()).hexdigest()
print(json.dumps(shapes))
"""


@pytest.mark.slow
def test_every_preset_builds_the_checkouts_model(release):
    installed = json.loads(_in_venv(release, "python", "-c", BUILD_EVERY_PRESET))
    # The checkout's environment also has the example plugin; the wheel brings exactly mmfuse's own presets.
    assert sorted(installed) == [
        n for n in mmfuse.list_presets() if PRESETS.entry(n).provider.startswith("mmfuse")
    ]
    for name, digest in installed.items():
        with torch.device("meta"):
            model = mmfuse.build_model(name, pretrained=False)
        layout = json.dumps([[k, list(v.shape)] for k, v in model.state_dict().items()])
        assert hashlib.sha256(layout.encode()).hexdigest() == digest, name


@pytest.mark.slow
def test_a_tiny_pipeline_runs_from_outside_the_tree(release):
    cwd = release["cwd"]
    _in_venv(release, "mmfuse", "data", "synth", "release", "--cases", "40", "--size", "40", "--workers", "1")
    config = {
        "model": TINY_MODEL,
        "data": {"root": "release"},
        "train": {"epochs": 2, "batch_size": 8, "swa": {"epochs": 1, "anneal_epochs": 1}},
        "evaluation": {"tta": False, "plots": False},
    }
    (cwd / "run.json").write_text(json.dumps(config))  # JSON is YAML
    # Its own final evaluation is the next command's job.
    _in_venv(release, "mmfuse", "train", "run.json", "--out", "run", "--threads", "1", "--no-eval")
    evaluate = [
        "mmfuse",
        "evaluate",
        "run",
        "--split",
        "test",
        "--bootstrap",
        "0",
        "--threads",
        "1",
        "--json",
    ]
    metrics = json.loads(_in_venv(release, *evaluate))
    assert 0 <= metrics["test"]["final"]["avg_auc"] <= 1
    image = sorted((cwd / "release").rglob("*.jpg"))[0]
    prediction = json.loads(_in_venv(release, "mmfuse", "predict", "run", "--primary", str(image), "--json"))
    assert set(prediction["tasks"]) == {task.name for task in mmfuse.DERM7PT_TASKS}


def test_the_changelog_has_a_section_for_this_version():
    """The release procedure (docs/release.md) renames Unreleased to the version being released."""
    changelog = (REPO / "CHANGELOG.md").read_text(encoding="utf-8")
    assert "## [Unreleased]" in changelog
    assert re.search(rf"^## \[{re.escape(mmfuse.__version__)}\] - \d{{4}}-\d{{2}}-\d{{2}}$", changelog, re.M)
