"""Atomic file writes: readers (and a resumed run after a crash) never see half a file.

Files written at a path a user chose go through :func:`atomic_write_bytes` (or, for a file staged
elsewhere, :func:`replace_file`), so one check, :func:`check_output_file`, keeps a write from replacing a
device, a FIFO, a socket or a directory that happens to sit at that path.

JSON is written strictly (undefined metrics, NaN or inf, become ``null``), so any JSON reader accepts it.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import stat
from collections.abc import Mapping, Sequence
from pathlib import Path

from mmfuse.errors import UsageError

_NOT_REGULAR = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
)


def check_output_file(path: str | os.PathLike) -> Path:
    """``path``, after refusing anything at it that is not a regular file (symlinks followed).

    A write is staged beside its target and renamed over it; run as root, that rename would replace
    ``/dev/full`` or a FIFO's node with a plain file. Raises :class:`~mmfuse.errors.UsageError` naming
    the path and what it is. Nothing at ``path`` yet, or a regular file, passes.
    """
    path = Path(path)
    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return path
    for test, kind in _NOT_REGULAR:
        if test(mode):
            raise UsageError(
                f"{path} is {kind}, not a regular file; mmfuse writes its output as a new file and will not "
                "replace or write into it: choose a file path"
            )
    return path


def replace_file(staged: str | os.PathLike, target: str | os.PathLike) -> None:
    """Rename the finished file ``staged`` over ``target`` once :func:`check_output_file` allows it."""
    os.replace(staged, check_output_file(target))


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, flush it to disk, then rename it over ``path``.

    The temporary file is created afresh (a stale one, or a FIFO under its name, is removed first, so
    opening it cannot block) and removed again when the write fails, a full disk for instance.
    """
    path = check_output_file(path)
    tmp = path.with_name(f".{path.name}.tmp")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with open(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        replace_file(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def json_safe(value):
    """``value`` with NaN and infinite floats replaced by ``None`` and mapping keys made strings."""
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def write_json(path: str | Path, data: Mapping) -> Path:
    """``data`` as indented, strict JSON (see :func:`json_safe`), written atomically."""
    path = Path(path)
    atomic_write_bytes(path, (json.dumps(json_safe(data), indent=2, allow_nan=False) + "\n").encode())
    return path


def write_csv_rows(path: str | Path, rows: Sequence[Mapping]) -> Path:
    """Every row under the first row's keys as a header, rewritten whole (an empty file for no rows)."""
    buffer = io.StringIO()
    if rows:
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    path = Path(path)
    atomic_write_bytes(path, buffer.getvalue().encode())
    return path
