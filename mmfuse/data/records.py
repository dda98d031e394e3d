"""The per-case record every dataset format produces: two image paths, grouped labels, metadata."""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmfuse.data.errors import DataError, Problem
from mmfuse.tasks import TaskSpec


@dataclass(frozen=True)
class CaseRecord:
    """One paired case. ``auxiliary_path`` is ``None`` when the release has no auxiliary image for it.

    ``labels`` maps task name to class name; ``metadata`` holds whatever else the format exposes
    (always ``row``, the case's position in its table, so errors can point at it).
    """

    case_id: str
    primary_path: Path
    auxiliary_path: Path | None
    labels: Mapping[str, str]
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        row = self.metadata.get("row")
        return f"case {self.case_id!r}" + (f" (row {row})" if row is not None else "")


def duplicate_case_ids(records: Sequence[CaseRecord | None], table: str) -> list[Problem]:
    """One problem per case id given to more than one row: predictions and reports key cases by id."""
    rows: dict[str, list[int]] = {}
    for i, record in enumerate(records):
        if record is not None:
            rows.setdefault(record.case_id, []).append(i)
    return [
        Problem(
            "duplicate case id",
            f"{table}: case id {case_id!r} is given to rows {', '.join(map(str, where))} "
            f"(lines {', '.join(str(i + 2) for i in where)}); every case needs its own id",
        )
        for case_id, where in rows.items()
        if len(where) > 1
    ]


def class_counts(records: Sequence[CaseRecord], tasks: Sequence[TaskSpec]) -> dict[str, dict[str, int]]:
    """``{task: {class: count}}`` with every class listed, in the tasks' class order."""
    counts = {t.name: dict.fromkeys(t.classes, 0) for t in tasks}
    for record in records:
        for t in tasks:
            counts[t.name][record.labels[t.name]] += 1
    return counts


def read_table(path: Path) -> tuple[tuple[str, ...], list[dict[str, str]]]:
    """Column names and rows of a CSV file (a BOM is ignored)."""
    if not path.is_file():
        if path.is_dir():
            raise DataError(f"metadata file {path} is a directory, not a CSV file")
        raise DataError(f"metadata file not found: {path}")
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            rows = [
                {k: (v if v is not None else "") for k, v in row.items() if k is not None} for row in reader
            ]
            return tuple(reader.fieldnames or ()), rows
    except UnicodeDecodeError as exc:
        raise DataError(
            f"{path} is not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset {exc.start}); "
            "save it as UTF-8 (e.g. from Latin-1: iconv -f latin1 -t utf-8)"
        ) from None
    except csv.Error as exc:
        raise DataError(f"{path}: not a readable CSV table ({exc})") from None
