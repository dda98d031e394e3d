"""A synthetic Derm7pt release: same files, same columns, raw label strings, JPEG images.

Labels follow the real data's per-diagnosis frequencies (:mod:`mmfuse.data.synth.derm7pt_stats`): a raw
diagnosis is drawn from its real count, then every criterion and metadata column independently from
its real distribution given that diagnosis. Images are drawn by :mod:`mmfuse.data.synth.render`.
Everything depends only on ``seed``: the same call writes the same bytes.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from mmfuse.data.errors import DataError
from mmfuse.data.formats.derm7pt import (
    ALL_COLUMNS,
    IMAGE_DIR,
    META_FILE,
    OFFICIAL_SPLIT_RATIOS,
    TASK_COLUMNS,
    group_label,
    seven_point_score,
    split_file,
)
from mmfuse.data.split import SPLIT_NAMES, stratified_split
from mmfuse.data.synth.derm7pt_stats import CONDITIONAL_COLUMNS, DERM7PT_STATISTICS
from mmfuse.data.synth.marker import SYNTHETIC_MARKER
from mmfuse.data.synth.render import render_clinical, render_dermoscopy, save_jpeg, skin_tone

MISSING_CLINICAL_RATE = 9 / 1011  # as in the real release
MISSING_CLINICAL_NOTE = "Clinical missing and replaced with derm"
CASES_PER_FOLDER = 40


@dataclass(frozen=True)
class SynthSummary:
    root: Path
    cases: int
    size: int
    seed: int
    missing_auxiliary: int


def sample_labels(
    rng: np.random.Generator, cases: int, stats: Mapping[str, dict] = DERM7PT_STATISTICS
) -> list[dict]:
    """Raw label rows: a diagnosis by its count, then each column given the diagnosis."""
    diagnoses = list(stats)
    weights = np.array([stats[d]["count"] for d in diagnoses], float)
    rows = []
    for diagnosis in rng.choice(diagnoses, size=cases, p=weights / weights.sum()):
        row = {"diagnosis": str(diagnosis)}
        for column in CONDITIONAL_COLUMNS:
            values, counts = zip(*stats[diagnosis][column].items(), strict=True)
            counts = np.array(counts, float)
            row[column] = str(rng.choice(values, p=counts / counts.sum()))
        rows.append(row)
    return rows


def image_paths(case: int) -> tuple[str, str]:
    """Clinical and dermoscopic paths with the release's mixed letter case (``SAL/SAL001.JPG``, ``SAL/Sal002.jpg``)."""
    folder_number, position = divmod(case, CASES_PER_FOLDER)
    folder = (
        "S" + chr(ord("A") + folder_number % 26) + ("L" if folder_number < 26 else str(folder_number // 26))
    )
    clinic = f"{folder}/{folder}{2 * position + 1:03d}.JPG"
    derm = f"{folder}/{folder.capitalize()}{2 * position + 2:03d}" + (".jpg" if position % 3 else ".JPG")
    return clinic, derm


def synthesize(
    out: str | os.PathLike,
    *,
    cases: int = 200,
    size: int = 256,
    seed: int = 0,
    workers: int | None = None,
    exist_ok: bool = False,
) -> SynthSummary:
    """Write a complete synthetic release to ``out`` (which must not exist or be empty).

    The release is drawn in a temporary folder beside ``out`` and renamed into place, so ``out`` is
    either absent or complete. With ``exist_ok`` a release already at ``out`` with the same arguments is
    used as it is, including one a concurrent call finished first (processes racing to make the same
    release all end up with the winner's).
    """
    if cases < 3:
        raise DataError(f"a release needs at least 3 cases (one per split), got {cases}")
    if size < 32:
        raise DataError(f"images need at least 32 pixels a side, got {size}")
    out = Path(out)
    if exist_ok and (existing := _existing_release(out, cases, size, seed)) is not None:
        return existing
    if out.exists() and any(out.iterdir()):
        raise DataError(f"{out} exists and is not empty; choose a new folder")
    rows, missing = _case_rows(np.random.default_rng(seed), cases)
    splits = _release_splits(rows, seed)

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        _write_tables(tmp, rows, splits)
        draw = partial(_draw_case, tmp, rows, missing, size, seed)
        with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
            list(pool.map(draw, range(cases)))
        provenance = {"generator": "mmfuse.data.synth", "cases": cases, "size": size, "seed": seed}
        (tmp / SYNTHETIC_MARKER).write_text(json.dumps(provenance, indent=2) + "\n")
        try:
            os.replace(tmp, out)  # atomic; replaces an empty folder, never a filled one
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
            if exist_ok and (existing := _existing_release(out, cases, size, seed)) is not None:
                return existing  # a concurrent call finished first
            raise DataError(f"{out} exists and is not empty; choose a new folder") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return SynthSummary(out, cases, size, seed, len(missing))


def _case_rows(rng: np.random.Generator, cases: int) -> tuple[list[dict], set[int]]:
    """Every case's meta.csv row (its grouped diagnosis as ``_diag``) and the cases without a clinical image.

    As in the real release, about 1 case in 112 names its dermoscopic image as the clinical one.
    """
    rows = sample_labels(rng, cases)
    missing = set()
    if cases >= 5:
        count = max(1, round(cases * MISSING_CLINICAL_RATE))
        missing = {int(i) for i in rng.choice(cases, size=count, replace=False)}
    for case, row in enumerate(rows):
        grouped = {task: group_label(task, row[column]) for task, column in TASK_COLUMNS.items()}
        clinic, derm = image_paths(case)
        row.update(
            case_num=str(case + 1),
            seven_point_score=str(seven_point_score(grouped)),
            clinic=derm if case in missing else clinic,
            derm=derm,
            case_id="",
            notes=MISSING_CLINICAL_NOTE if case in missing else "",
            _diag=grouped["DIAG"],
        )
    return rows, missing


def _release_splits(rows: list[dict], seed: int) -> dict[str, list[int]]:
    """The official split sizes, stratified by diagnosis; a tiny release deals its cases out in turn."""
    splits = stratified_split([r["_diag"] for r in rows], OFFICIAL_SPLIT_RATIOS, seed=seed)
    if any(not splits[name] for name in SPLIT_NAMES):  # tiny releases: every split gets a case
        splits = {name: [i for i in range(len(rows)) if i % 3 == k] for k, name in enumerate(SPLIT_NAMES)}
    return splits


def _write_tables(root: Path, rows: list[dict], splits: Mapping[str, list[int]]) -> None:
    """meta.csv and the three split files (row indexes), as the real release lays them out."""
    (root / "meta").mkdir()
    with (root / META_FILE).open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=ALL_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    for name in SPLIT_NAMES:
        with (root / split_file(name)).open("w", newline="") as fh:
            fh.write("indexes\n" + "".join(f"{i}\n" for i in splits[name]))


def _draw_case(root: Path, rows: list[dict], missing: set[int], size: int, seed: int, case: int) -> None:
    """One case's images, from the case's own generator: threads may draw the cases in any order."""
    case_rng = np.random.default_rng([seed, case])
    row = rows[case]
    skin = skin_tone(case_rng)
    derm, lesion = render_dermoscopy(case_rng, size, row, skin)
    save_jpeg(derm, root / IMAGE_DIR / row["derm"], quality=92)
    clinical = render_clinical(case_rng, size, derm, lesion, row["_diag"], skin, context=row)
    if case not in missing:
        save_jpeg(clinical, root / IMAGE_DIR / row["clinic"], quality=88)


def _existing_release(out: Path, cases: int, size: int, seed: int) -> SynthSummary | None:
    """The release at ``out`` when it was written with these arguments (``None`` when there is none)."""
    try:
        provenance = json.loads((out / "SYNTHETIC.json").read_text())
    except (OSError, ValueError):
        return None
    wanted = {"cases": cases, "size": size, "seed": seed}
    if {k: provenance.get(k) for k in wanted} != wanted:
        raise DataError(
            f"{out} holds a synthetic release of {provenance}; asked for {wanted}: choose another folder"
        )
    with (out / META_FILE).open(newline="") as fh:
        missing = sum(row["notes"] == MISSING_CLINICAL_NOTE for row in csv.DictReader(fh))
    return SynthSummary(out, cases, size, seed, missing)
