"""Atomic file writes: readers (and a resumed run after a crash) never see half a file.

JSON is written strictly (undefined metrics, NaN or inf, become ``null``), so any JSON reader accepts it.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, flush it to disk, then rename it over ``path``."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


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
