"""Helpers of the fuzzing suite: run a command in-process under a time limit and check the error contract.

The contract (docs/guarantees.md): exit 0, or exit 1 with one ``mmfuse COMMAND: error: ...`` line (a
``data check`` report lists its problems instead), or exit 2 for a malformed command line; never a
traceback, never a hang, and files that existed before are unchanged.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import signal
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from mmfuse.cli import main

# One example of any kind takes well under a second; the limit only catches hangs.
TIME_LIMIT_S = 60

# Bounded so the whole suite stays near a minute on two busy cores; deadline off (wall-clock is noisy).
FUZZ = settings(
    max_examples=int(os.environ.get("MMFUSE_FUZZ_EXAMPLES", "25")),
    deadline=None,
    derandomize=True,  # the same cases on every run and machine: a CI failure reproduces locally
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.function_scoped_fixture,
        HealthCheck.data_too_large,
    ],
    database=None,
)


class Hang(BaseException):
    """A command ran past TIME_LIMIT_S (BaseException: the CLI's own handlers must not swallow it)."""


@dataclass
class Outcome:
    argv: list[str]
    code: int
    out: str
    err: str

    def __str__(self) -> str:
        return f"mmfuse {' '.join(self.argv)} -> {self.code}\nstdout: {self.out[-2000:]}\nstderr: {self.err[-4000:]}"


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    def expire(signum, frame):
        raise Hang(f"no result after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def invoke(*argv: object, limit: float = TIME_LIMIT_S) -> Outcome:
    """``mmfuse ARGV`` in this process; argparse's exit becomes exit status 2."""
    args = [str(a) for a in argv]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), time_limit(limit):
        try:
            code = main(args)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 2
    return Outcome(args, code, out.getvalue(), err.getvalue())


def assert_contract(
    outcome: Outcome, *, allowed: Iterable[int] = (0, 1), names: Iterable[object] = ()
) -> None:
    """No traceback; an allowed exit status; an error is one line (or a check report) naming ``names``."""
    assert "Traceback" not in outcome.err and "internal error" not in outcome.err, str(outcome)
    assert outcome.code in set(allowed), str(outcome)
    if outcome.code == 1:
        lines = outcome.err.strip().splitlines()
        assert lines, str(outcome)
        is_check_report = outcome.argv[:2] == ["data", "check"] and "problem(s) in" in lines[-1]
        if not is_check_report:
            # progress lines may come before the error line, a table's problem list after it
            errors = [
                line for line in lines if line.startswith(f"mmfuse {outcome.argv[0]}") and ": error: " in line
            ]
            assert len(errors) == 1, str(outcome)
        text = outcome.out + outcome.err
        for name in names:
            assert str(name) in text, f"{name} not named\n{outcome}"


def fingerprint(*roots: Path) -> dict[str, str]:
    """SHA-256 of every file under ``roots`` (symlinks by target name), to prove nothing was changed."""
    prints = {}
    for root in roots:
        paths = [root] if root.is_file() else sorted(root.rglob("*"))
        for path in paths:
            if path.is_symlink():
                prints[str(path)] = "-> " + str(path.readlink())
            elif path.is_file():
                prints[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return prints


def assert_unchanged(before: dict[str, str], *roots: Path, ignore: tuple[str, ...] = ()) -> None:
    """Every file of ``before`` is still there with the same bytes (new files under ``ignore`` may appear)."""
    after = fingerprint(*roots)
    changed = [p for p, digest in before.items() if after.get(p) != digest]
    assert not changed, f"files changed or removed: {changed[:5]}"
    added = [p for p in after if p not in before and not any(part in p for part in ignore)]
    assert not added, f"unexpected new files: {added[:5]}"


def document_edits(values, actions: Iterable[str], *, key=None, max_size: int = 3):
    """Lists of ``(where, action, value, key)`` edits for :func:`apply_edits`: ``set`` or ``delete`` the node
    at path number ``where`` (modulo the number of paths), or ``add`` ``key: value`` beside it."""
    return st.lists(
        st.tuples(
            st.integers(0, 10_000),
            st.sampled_from(list(actions)),
            values,
            key if key is not None else st.text(max_size=6),
        ),
        min_size=1,
        max_size=max_size,
    )


def key_paths(value, prefix=()):
    """Every key path of a JSON or YAML document (mappings and lists), the root ``()`` first."""
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from key_paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from key_paths(item, (*prefix, index))


def apply_edits(document, edits, *, include_root: bool = False):
    """``document`` after each edit of :func:`document_edits`; the root is only replaced if ``include_root``."""
    for where, action, value, key in edits:
        paths = [p for p in key_paths(document) if include_root or p]
        path = paths[where % len(paths)]
        if not path:
            document = value if action == "set" else document
            continue
        parent = document
        for step in path[:-1]:
            parent = parent[step]
        if action == "set":
            parent[path[-1]] = value
        elif action == "delete":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[key] = value
    return document
