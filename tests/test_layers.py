"""The package imports downwards only: plain data and configuration below the model, the model below
saving/loading and cards, those below training and evaluation, all of it below the command line
(docs/architecture.md). Checked on the source, imports inside functions included: an import may be
deferred to keep start-up fast, but moved to the top of its module it must still be legal, so no
deferred import can be hiding a cycle."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "mmfuse"

# Lowest first. A module may import its own layer or lower ones, never a higher one.
LAYERS: tuple[tuple[str, ...], ...] = (
    (
        "mmfuse._version",
        "mmfuse._lazy",
        "mmfuse.errors",
        "mmfuse.tasks",
        "mmfuse.metadata",
        "mmfuse.hookspecs",
        "mmfuse.attention",
        "mmfuse.fileio",
        "mmfuse.limits",
        "mmfuse.safeweights",
        "mmfuse.interfaces",
        "mmfuse.threads",
        "mmfuse.plots",
        "mmfuse.metrics_layout",
        "mmfuse.cv_layout",
        "mmfuse.yamlio",
        "mmfuse.rules",
        "mmfuse.progress",
        "mmfuse.head_mixing",
        "mmfuse.fusion_stages",
    ),
    ("mmfuse.registry",),
    ("mmfuse.presets", "mmfuse.data", "mmfuse.runtime", "mmfuse.tracking"),
    ("mmfuse.model", "mmfuse.model_parts"),
    ("mmfuse.params", "mmfuse.model_card", "mmfuse.hub", "mmfuse.runs", "mmfuse.factory"),
    (
        "mmfuse.evaluation",
        "mmfuse.training",
        "mmfuse.pipeline",
        "mmfuse.export",
        "mmfuse.explain",
        "mmfuse.gradio_app",
        "mmfuse.demo",
        "mmfuse.gradio_server",
        "mmfuse.space",
        "mmfuse.reproduce",
        "mmfuse.reproduce_milk10k",
    ),
    ("mmfuse.cli", "mmfuse.__main__", "mmfuse"),
)


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> int:
    best = None
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and (
                best is None or len(prefix) > best[1]
            ):
                best = (index, len(prefix))
    assert best is not None, f"{module} is in no layer of tests/test_layers.py"
    return best[0]


def _resolve(module: str, node: ast.ImportFrom, is_package: bool) -> list[str]:
    if node.level:
        base = module.split(".")
        base = base if is_package else base[:-1]
        base = base[: len(base) - (node.level - 1)]
        prefix = ".".join(base + ([node.module] if node.module else []))
    else:
        prefix = node.module or ""
    if not prefix.startswith("mmfuse"):
        return []
    # "from mmfuse.data import build" may name a submodule: count the more specific target when it exists.
    targets = []
    for alias in node.names:
        candidate = f"{prefix}.{alias.name}"
        exists = (PACKAGE.parent / Path(*candidate.split("."))).with_suffix(".py").exists() or (
            PACKAGE.parent / Path(*candidate.split("."))
        ).is_dir()
        targets.append(candidate if exists else prefix)
    return targets


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports(path: Path) -> tuple[set[str], list[tuple[int, str]]]:
    """``(module-level runtime imports of mmfuse modules, function-level ones as (line, module))``."""
    module = module_name(path)
    tree = ast.parse(path.read_text(encoding="utf-8"))
    is_package = path.name == "__init__.py"
    top: set[str] = set()
    nested: list[tuple[int, str]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                continue  # annotations only: never executed
            inside = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            found = []
            if isinstance(child, ast.ImportFrom):
                found = _resolve(module, child, is_package)
            elif isinstance(child, ast.Import):
                found = [a.name for a in child.names if a.name.startswith("mmfuse")]
            for target in found:
                if in_function:
                    nested.append((child.lineno, target))
                else:
                    top.add(target)
            visit(child, inside)

    visit(tree, False)
    return top, nested


def graph() -> dict[str, set[str]]:
    """Module -> the mmfuse modules it imports, at the top or inside functions."""
    edges = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        top, nested = imports(path)
        edges[module_name(path)] = top | {target for _, target in nested}
    return edges


def test_every_module_imports_only_its_own_layer_or_lower_ones():
    upward = []
    for module, targets in graph().items():
        for target in sorted(targets):
            if layer_of(target) > layer_of(module):
                upward.append(
                    f"{module} (layer {layer_of(module)}) imports {target} (layer {layer_of(target)})"
                )
    assert not upward, "\n".join(upward)


def test_training_and_evaluation_never_import_each_other():
    # What both need (device, autocast, loaders, file writers, figures) lives in mmfuse.runtime,
    # mmfuse.fileio and mmfuse.plots; a run that trains and then evaluates is put together in
    # mmfuse.pipeline, which hands the trainer the evaluation as a value.
    sides = ("mmfuse.training", "mmfuse.evaluation")
    crossing = []
    for module, targets in graph().items():
        for side, other in (sides, sides[::-1]):
            if module == side or module.startswith(side + "."):
                crossing += [
                    f"{module} imports {t}"
                    for t in sorted(targets)
                    if t == other or t.startswith(other + ".")
                ]
    assert not crossing, "\n".join(crossing)


def test_no_import_cycle_between_modules():
    edges = graph()
    modules = set(edges)
    state: dict[str, int] = {}
    cycles = []

    def walk(node: str, stack: list[str]) -> None:
        state[node] = 1
        for target in sorted(edges.get(node, ())):
            while target not in modules and "." in target:
                target = target.rsplit(".", 1)[0]  # "mmfuse.data.build_dataset" -> the package
            if target == node or target not in modules:
                continue
            if state.get(target) == 1:
                cycles.append(" -> ".join(stack[stack.index(target) :] + [target]))
            elif target not in state:
                walk(target, [*stack, target])
        state[node] = 2

    for module in sorted(modules):
        if module not in state:
            walk(module, [module])
    # A package's __init__ re-exporting its own submodules is not a cycle.
    real = [c for c in cycles if not all(part.startswith(c.split(" -> ")[0]) for part in c.split(" -> "))]
    assert not real, "\n".join(real)


def test_the_core_layers_import_at_the_top():
    # Configuration, model, saving/loading and cards: every mmfuse import sits at the top of the module,
    # where the reader (and Python) sees the layering.
    core = (
        "mmfuse.presets",
        "mmfuse.model",
        "mmfuse.params",
        "mmfuse.model_card",
        "mmfuse.hub",
        "mmfuse.factory",
    )
    hidden = []
    for path in sorted(PACKAGE.glob("*.py")):
        if module_name(path) in core:
            hidden += sorted({f"{module_name(path)}:{line} imports {t}" for line, t in imports(path)[1]})
    assert not hidden, "\n".join(hidden)


def test_the_architecture_page_lists_the_same_layers():
    """docs/architecture.md's layer table is what a newcomer reads; it must name each module in its layer."""
    text = (PACKAGE.parent / "docs" / "architecture.md").read_text(encoding="utf-8")
    block = text.split("## Layers", 1)[1].split("```", 2)[1]
    rows = {}
    for line in block.strip().splitlines():
        number, _, rest = line.strip().partition(" ")
        rows[int(number)] = set(rest.replace(",", " ").split())
    assert sorted(rows) == list(range(1, len(LAYERS) + 1))
    for index, modules in enumerate(LAYERS, start=1):
        for module in modules:
            short = module.removeprefix("mmfuse.")
            assert short in rows[index], f"docs/architecture.md: layer {index} does not list {short}"


# A module over this many lines, or a function over that many, has a second job that wants a home of its own.
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 80


def test_modules_and_functions_stay_small():
    too_long = []
    for path in sorted(PACKAGE.rglob("*.py")):
        source = path.read_text(encoding="utf-8")
        name = path.relative_to(PACKAGE.parent).as_posix()
        if len(source.splitlines()) > MAX_MODULE_LINES:
            too_long.append(f"{name}: {len(source.splitlines())} lines")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    too_long.append(f"{name}: {node.name}() {lines} lines")
    assert too_long == []
