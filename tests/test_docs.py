"""Every shell command and Python snippet shown in README.md and docs/*.md runs, at a small size.

The blocks of one Markdown file run in order in one fresh Python process (tests/docs_blocks.py), in a
scratch directory that holds what a reader would have at hand:

- ``mmfuse-demo/``: what ``mmfuse demo`` leaves (``data/``: a synthetic Derm7pt-format release, ``run/``: a
  trained run), made by a shrunken demo (40 cases, 2 epochs, 32 px) once per session;
- ``syn/``: a synthetic release; ``my_data/``: the same images as a paired CSV dataset with its own tasks
  (the table the schema in docs/data.md describes); ``derm.jpg`` and ``clinic.jpg``: one case's two images;
- ``examples/`` and ``benchmarks/``: the repository's.

Markers in the Markdown (see tests/docs_blocks.py) skip what cannot run here, with the reason reported as
the test's skip reason, or shrink a block. Each block is one test, named after its file and line.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from docs_blocks import Block, parse, plan_of  # noqa: E402
from test_training_fixtures import make_paired_csv  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
FILE_TIMEOUT_S = 900


def _collect() -> list[Block]:
    blocks = []
    for path in DOCS:
        blocks += parse(path, str(path.relative_to(REPO)))
    return blocks


BLOCKS = _collect()
RUNNABLE = [b for b in BLOCKS if b.runs or b.skip is not None]


@pytest.fixture(scope="session")
def docs_fixtures(tmp_path_factory) -> Path:
    from mmfuse.cli import main as mmfuse_main
    from mmfuse.data.formats.derm7pt import load_release
    from mmfuse.data.synth import synthesize

    base = tmp_path_factory.mktemp("docs-fixtures")
    synthesize(base / "syn", cases=40, size=64, seed=0)
    status = mmfuse_main(
        ["demo", "--out", str(base / "mmfuse-demo"), "--cases", "40", "--epochs", "2", "--img-size", "32"]
        + ["--threads", "1"]
    )
    assert status == 0, "the shrunken demo failed"
    make_paired_csv(base / "syn", base / "my_data")
    case = load_release(base / "syn").split_records("test")[0]
    shutil.copyfile(case.primary_path, base / "derm.jpg")
    shutil.copyfile(case.auxiliary_path, base / "clinic.jpg")
    return base


_RESULTS: dict[str, dict[str, dict]] = {}


def _run_file(source: str, base: Path, workdir: Path) -> dict[str, dict]:
    for name in ("syn", "mmfuse-demo", "my_data"):
        shutil.copytree(base / name, workdir / name, symlinks=True)
    for name in ("derm.jpg", "clinic.jpg"):
        shutil.copyfile(base / name, workdir / name)
    for name in ("examples", "benchmarks"):
        (workdir / name).symlink_to(REPO / name)
    plan = plan_of([b for b in BLOCKS if b.source == source])
    (workdir / ".plan.json").write_text(json.dumps(plan))
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
        "MPLBACKEND": "Agg",
        "PYTHONPATH": str(REPO),
    }
    done = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("docs_blocks.py")), ".plan.json", ".results.json"],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=FILE_TIMEOUT_S,
        check=False,
    )
    print(done.stderr[-4000:], file=sys.stderr)  # per-block timings, shown with -s or on failure
    results_path = workdir / ".results.json"
    if not results_path.is_file():
        pytest.fail(f"running the blocks of {source} crashed:\n{done.stdout}\n{done.stderr}")
    return {r["id"]: r for r in json.loads(results_path.read_text())}


@pytest.mark.slow
@pytest.mark.parametrize("block", RUNNABLE, ids=[b.id for b in RUNNABLE])
def test_documented_block_runs(block: Block, docs_fixtures, tmp_path_factory):
    if block.skip is not None:
        pytest.skip(f"{block.id}: {block.skip}")
    if block.source not in _RESULTS:
        workdir = tmp_path_factory.mktemp(block.source.replace("/", "_"))
        _RESULTS[block.source] = _run_file(block.source, docs_fixtures, workdir)
    result = _RESULTS[block.source][block.id]
    assert result["status"] == "passed", f"{block.id} ({block.lang}) failed:\n{result['output']}"


def test_markers_parse_and_every_doc_is_covered():
    """Misplaced markers fail collection above; here: the docs exist and some blocks run."""
    assert any(b.source == "README.md" for b in BLOCKS)
    assert sum(b.runs for b in BLOCKS) >= 20


def test_marker_rules(tmp_path):
    from docs_blocks import MarkerError

    doc = tmp_path / "x.md"
    doc.write_text(
        "<!-- docs-test: replace 224 => 32 -->\n```python\nx = 224\n```\n\n"
        "<!-- docs-test: skip needs a GPU -->\n\n```bash\nnvidia-smi\n```\n```yaml\na: 1\n```\n"
    )
    first, second, third = parse(doc, "x.md")
    assert first.prepared() == "x = 32\n" and first.runs
    assert second.skip == "needs a GPU" and not second.runs
    assert not third.runs  # yaml is text unless written to a file
    doc.write_text("<!-- docs-test: replace nothere => 1 -->\n```python\nx = 2\n```\n")
    with pytest.raises(MarkerError, match="does not occur"):
        parse(doc, "x.md")
    doc.write_text("<!-- docs-test: skip because -->\nSome prose.\n```python\nx = 2\n```\n")
    with pytest.raises(MarkerError, match="directly above"):
        parse(doc, "x.md")
