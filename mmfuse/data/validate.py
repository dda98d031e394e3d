"""``check``: every problem of a dataset in one pass; ``stats``: class counts per split from the tables alone."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from mmfuse.data.errors import DataError, Problem
from mmfuse.data.formats.paired_csv import parse_paired_csv
from mmfuse.data.images import OutsideRootError, resolve_image_path, verify_image
from mmfuse.data.records import class_counts

# (where, image folder, path as written in the table)
ImageRef = tuple[str, Path, str]


def check_images(
    refs: Iterable[ImageRef],
    *,
    workers: int | None = None,
    root: Path | None = None,
    allow_outside_root: bool = False,
) -> list[Problem]:
    """Locate and fully decode every image; one problem per missing, unreadable, too large or outside file.

    With ``root``, a path leading outside it is reported and never opened (unless ``allow_outside_root``).
    """

    def check(ref: ImageRef) -> Problem | None:
        where, base, relative = ref
        try:
            path = resolve_image_path(base, relative, root=root, allow_outside_root=allow_outside_root)
        except OutsideRootError as exc:
            return Problem("outside root", f"{where}: {exc}")
        if path is None:
            return Problem("missing file", f"{where}: image {base / relative} not found")
        try:
            reason = verify_image(path)
        except Exception as exc:  # noqa: BLE001 - one bad file must not lose the report of all the others
            reason = f"cannot decode image {path}: {type(exc).__name__}: {exc}"
        return Problem("unreadable image", f"{where}: {reason}") if reason else None

    with ThreadPoolExecutor(max_workers=workers or min(8, os.cpu_count() or 1)) as pool:
        return [p for p in pool.map(check, list(refs)) if p is not None]


def check_paired_csv(
    root: str | Path,
    schema: str | Path,
    *,
    images: bool = True,
    workers: int | None = None,
    allow_outside_root: bool = False,
) -> list[Problem]:
    """All problems of a CSV + schema dataset: missing columns, unknown labels, bad splits, images."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            table = parse_paired_csv(root, schema, allow_outside_root=allow_outside_root)
    except DataError as exc:
        return [Problem("missing file", str(exc))]
    problems = list(table.problems)
    if images and not any(p.kind == "missing column" for p in problems):
        problems = [p for p in problems if p.kind != "outside root"]  # check_images reports them again
        from mmfuse.data.records import read_table

        folders = table.schema.image_folders(table.root)
        _, rows = read_table(table.root / table.schema.table)
        refs: list[ImageRef] = []
        for i, row in enumerate(rows):
            where = f"{table.schema.table} row {i} (line {i + 2})"
            for column in folders:
                if row[column].strip():
                    refs.append((f"{where}, column {column!r}", folders[column], row[column].strip()))
        problems += check_images(
            refs, workers=workers, root=table.root, allow_outside_root=allow_outside_root
        )
    return problems


def split_statistics(table) -> dict[str, dict[str, dict[str, int]]]:
    """``{"all": {task: {class: n}}, "train": ..., "valid": ..., "test": ...}`` from the table alone."""
    records = [r for r in table.records if r is not None]
    stats = {"all": class_counts(records, table.tasks)}
    for name in table.splits:
        stats[name] = class_counts(table.split_records(name), table.tasks)
    return stats


def format_statistics(stats: dict[str, dict[str, dict[str, int]]]) -> str:
    """A plain-text table: one line per task and class, one column per split."""
    splits = list(stats)
    tw = max(6, *(len(task) for task in stats["all"]))
    cw = max(6, *(len(cls) for classes in stats["all"].values() for cls in classes))
    lines = [f"{'task':<{tw}} {'class':<{cw}} " + " ".join(f"{s:>6}" for s in splits)]
    for task, classes in stats["all"].items():
        for cls in classes:
            lines.append(f"{task:<{tw}} {cls:<{cw}} " + " ".join(f"{stats[s][task][cls]:>6}" for s in splits))
    return "\n".join(lines)
