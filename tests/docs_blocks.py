"""Find and run the fenced blocks of the Markdown documentation (used by tests/test_docs.py).

Blocks fenced as ``bash``/``sh``/``shell`` run in bash (``-e -o pipefail``), ``python`` blocks run in one
namespace per file, in order, like a reader's session; blocks of any other language (yaml, json, toml,
diagrams, printed output) are text. HTML comments directly above a block (invisible on GitHub) change how
it runs:

``<!-- docs-test: skip REASON -->``
    not run here (it needs a GPU, the Derm7pt images, the network...); reported as a skip with REASON.
``<!-- docs-test: replace OLD => NEW -->``
    run with the text OLD replaced by NEW: a smaller size, a timm ``test_*`` encoder. Repeatable; OLD must
    occur in the block; ``\n`` in NEW is a line break.
``<!-- docs-test: write PATH -->``
    write the block (of any language) to PATH in the working directory, so later blocks use it.

Run as a script (``python docs_blocks.py PLAN.json RESULTS.json``) it executes a plan written by the test
in the current directory and records one result per block, so a file's blocks share one interpreter.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path

SHELL = {"bash", "sh", "shell"}
PYTHON = {"python", "py"}
MARKER = re.compile(r"^<!--\s*docs-test:\s*(skip|replace|write)\b\s*(.*?)\s*-->\s*$")
FENCE = re.compile(r"^(```+|~~~+)\s*([\w+-]*)\s*$")


class MarkerError(ValueError):
    """A docs-test marker is malformed or does not sit directly above a block."""


@dataclass
class Block:
    source: str  # "docs/x.md"
    line: int  # line of the opening fence, 1-based
    lang: str
    code: str
    skip: str | None = None
    replace: list[tuple[str, str]] = field(default_factory=list)
    write: str | None = None

    @property
    def id(self) -> str:
        return f"{self.source}:{self.line}"

    @property
    def runs(self) -> bool:
        return self.skip is None and (self.lang in SHELL | PYTHON or self.write is not None)

    def prepared(self) -> str:
        code = self.code
        for old, new in self.replace:
            code = code.replace(old, new)
        return code


def parse(path: Path, source: str) -> list[Block]:
    """Every fenced block of ``path`` with the markers above it; misplaced markers raise :class:`MarkerError`."""
    blocks: list[Block] = []
    pending: list[tuple[int, str, str]] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        text = lines[i]
        marker = MARKER.match(text.strip())
        fence = FENCE.match(text)
        if marker:
            pending.append((i + 1, marker.group(1), marker.group(2)))
        elif "docs-test" in text:
            raise MarkerError(f"{source}:{i + 1}: unreadable docs-test marker {text.strip()!r}")
        elif fence:
            start, close = i, fence.group(1)
            body = []
            i += 1
            while i < len(lines) and not lines[i].startswith(close):
                body.append(lines[i])
                i += 1
            block = Block(source, start + 1, fence.group(2).lower(), "\n".join(body) + "\n")
            for line, kind, argument in pending:
                _apply_marker(block, line, kind, argument)
            pending = []
            blocks.append(block)
        elif text.strip() and pending:
            raise MarkerError(f"{source}:{pending[0][0]}: a docs-test marker must sit directly above a block")
        i += 1
    if pending:
        raise MarkerError(f"{source}:{pending[0][0]}: a docs-test marker with no block after it")
    return blocks


def _apply_marker(block: Block, line: int, kind: str, argument: str) -> None:
    where = f"{block.source}:{line}"
    if kind == "skip":
        if not argument:
            raise MarkerError(f"{where}: 'skip' needs a reason")
        block.skip = argument
    elif kind == "write":
        if not argument:
            raise MarkerError(f"{where}: 'write' needs a path")
        block.write = argument
    else:
        old, arrow, new = argument.partition(" => ")
        if not arrow or not old:
            raise MarkerError(f"{where}: 'replace' takes 'OLD => NEW', got {argument!r}")
        if old not in block.code:
            raise MarkerError(f"{where}: 'replace': {old!r} does not occur in the block below")
        block.replace.append((old, new.replace("\\n", "\n")))


# -- running (in the child interpreter) ------------------------------------------------------------


def _tail(text: str, limit: int = 6000) -> str:
    return text if len(text) <= limit else "…" + text[-limit:]


def run_plan(plan: list[dict], timeout: float) -> list[dict]:
    namespace: dict = {"__name__": "__docs__"}
    results = []
    for entry in plan:
        block = Block(**{k: v for k, v in entry.items() if k != "replace"}, replace=entry["replace"])
        started = time.perf_counter()
        result = {"id": block.id, "status": "passed", "output": ""}
        code = block.prepared()
        try:
            if block.write is not None:
                target = Path(block.write)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(code, encoding="utf-8")
            elif block.lang in PYTHON:
                exec(compile(code, block.id, "exec"), namespace)  # noqa: S102 - the documentation's own code
            else:
                done = subprocess.run(
                    ["bash", "-e", "-o", "pipefail", "-c", code],
                    capture_output=True,
                    text=True,
                    timeout=timeout,
                    check=False,
                )
                result["output"] = _tail(done.stdout + done.stderr)
                if done.returncode != 0:
                    result["status"] = "failed"
                    result["output"] = f"exit status {done.returncode}\n" + result["output"]
        except BaseException:  # noqa: BLE001 - every failure of a snippet is reported, none stops the file
            result["status"] = "failed"
            result["output"] = _tail(traceback.format_exc())
        result["seconds"] = round(time.perf_counter() - started, 2)
        results.append(result)
        print(f"{block.id}: {result['status']} ({result['seconds']} s)", file=sys.stderr, flush=True)
    return results


def main() -> None:
    plan_path, results_path = sys.argv[1], sys.argv[2]
    timeout = float(os.environ.get("DOCS_TEST_BLOCK_TIMEOUT", "300"))
    plan = json.loads(Path(plan_path).read_text())
    import matplotlib

    matplotlib.use("Agg")
    results = run_plan(plan, timeout)
    Path(results_path).write_text(json.dumps(results))


def plan_of(blocks: list[Block]) -> list[dict]:
    return [asdict(b) for b in blocks if b.runs]


if __name__ == "__main__":
    main()
