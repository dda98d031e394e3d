"""The MILK10k release (ISIC 2025 challenge): its tables, the pairing of each lesion's two images, its metadata.

Layout under ROOT, as distributed::

    MILK10k_Training_GroundTruth.csv   lesion_id + one one-hot column per diagnosis (0.0 / 1.0)
    MILK10k_Training_Metadata.csv      two rows per lesion: image_type, isic_id, patient fields, MONET scores
    MILK10k_Training_Supplement.csv    optional, per isic_id: diagnosis_full, diagnosis_confirm_type, ...
    MILK10k_Training_Input/<lesion_id>/<isic_id>.jpg
    MILK10k_Test_Metadata.csv          the unlabelled benchmark part (loaded with part=benchmark)
    MILK10k_Test_Input/<lesion_id>/<isic_id>.jpg

A lesion's dermoscopic image is the primary modality and its clinical close-up the auxiliary one; which
is which comes from ``image_type``, never from the order of files in a folder. One single-label task,
``DX``, has the ground-truth file's diagnosis columns as classes, in that order; the case id is
``lesion_id``. The MONET concept scores are per image and enter the metadata once per modality; the
supplement's diagnosis fields are exposed on each record for analysis, never as model inputs.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from mmfuse.data.errors import DataError, Problem, raise_for_problems
from mmfuse.data.images import locate_images
from mmfuse.data.records import CaseRecord, read_table
from mmfuse.data.split import stratified_split
from mmfuse.data.validate import ImageRef, check_images
from mmfuse.metadata import FieldSpec
from mmfuse.tasks import TaskSpec

__all__ = ["CLASSES", "Milk10kRelease", "check_release", "load_release"]

TASK = "DX"
PARTS = ("training", "benchmark")
GROUND_TRUTH_FILE = "MILK10k_Training_GroundTruth.csv"
SUPPLEMENT_FILE = "MILK10k_Training_Supplement.csv"
SAMPLE_SUBMIT_FILE = "MILK10k_Sample_Submit.csv"
METADATA_FILES: Mapping[str, str] = {
    "training": "MILK10k_Training_Metadata.csv",
    "benchmark": "MILK10k_Test_Metadata.csv",
}
INPUT_DIRS: Mapping[str, str] = {"training": "MILK10k_Training_Input", "benchmark": "MILK10k_Test_Input"}
BENCHMARK_SPLIT = "benchmark"

CLASSES: tuple[str, ...] = (
    "AKIEC",
    "BCC",
    "BEN_OTH",
    "BKL",
    "DF",
    "INF",
    "MAL_OTH",
    "MEL",
    "NV",
    "SCCKA",
    "VASC",
)
DERMOSCOPIC, CLINICAL = "dermoscopic", "clinical: close-up"
IMAGE_TYPES: Mapping[str, str] = {DERMOSCOPIC: "primary", CLINICAL: "auxiliary"}
# Prefix of a modality's per-image fields on a record (MONET scores, isic_id).
PREFIX: Mapping[str, str] = {DERMOSCOPIC: "dermoscopic", CLINICAL: "clinical"}

LESION_FIELDS = ("age_approx", "sex", "skin_tone_class", "site")
MONET_COLUMNS: tuple[str, ...] = (
    "MONET_ulceration_crust",
    "MONET_hair",
    "MONET_vasculature_vessels",
    "MONET_erythema",
    "MONET_pigmented",
    "MONET_gel_water_drop_fluid_dermoscopy_liquid",
    "MONET_skin_markings_pen_ink_purple_pen",
)
METADATA_COLUMNS: tuple[str, ...] = ("lesion_id", "image_type", "isic_id", *LESION_FIELDS, *MONET_COLUMNS)
SITES: tuple[str, ...] = (
    "trunk",
    "head_neck_face",
    "lower_extremity",
    "upper_extremity",
    "hand",
    "foot",
    "genital",
)
SITE_NOT_RECORDED = (
    "not_recorded"  # an empty site is a category of its own: where it is missing says something
)

# The model's metadata input: age (with a missing indicator), sex, skin tone, site and 7 MONET scores per image.
METADATA_FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec("age_approx", "numeric"),
    FieldSpec("age_approx_missing", "numeric"),
    FieldSpec("sex", "categorical", ("female", "male")),
    FieldSpec("skin_tone_class", "categorical", tuple(str(i) for i in range(6))),
    FieldSpec("site", "categorical", (*SITES, SITE_NOT_RECORDED)),
    *(FieldSpec(f"{PREFIX[t]}_{c}", "numeric") for t in (DERMOSCOPIC, CLINICAL) for c in MONET_COLUMNS),
)

# The training part has no official split: lesions are split stratified by diagnosis (use --folds for CV).
DEFAULT_RATIOS: Mapping[str, float] = {"train": 0.7, "valid": 0.1, "test": 0.2}


def default_tasks(classes: tuple[str, ...] = CLASSES) -> tuple[TaskSpec, ...]:
    return (TaskSpec(TASK, classes),)


@dataclass
class Milk10kRelease:
    """A parsed part of the release: one record per lesion, the splits and every table problem found."""

    root: Path
    part: str
    records: list[CaseRecord | None]
    splits: dict[str, list[int]]
    tasks: tuple[TaskSpec, ...]
    problems: list[Problem] = field(default_factory=list)
    images_present: bool = True
    metadata_fields: tuple[FieldSpec, ...] = METADATA_FIELDS
    # isic_id -> (lesion_id, image_type) as the metadata table pairs them, for the image check.
    images: dict[str, tuple[str, str]] = field(default_factory=dict)

    def split_records(self, split: str) -> list[CaseRecord]:
        if split not in self.splits:
            raise DataError(f"unknown split {split!r}; splits: {list(self.splits)}")
        return [r for i in self.splits[split] if (r := self.records[i]) is not None]


def _read_ground_truth(root: Path, problems: list[Problem]) -> tuple[tuple[str, ...], dict[str, str]]:
    """The diagnosis columns and ``{lesion_id: class}``; one problem per row that is not one-hot."""
    columns, rows = read_table(root / GROUND_TRUTH_FILE)
    if "lesion_id" not in columns:
        problems.append(Problem("missing column", f"{GROUND_TRUTH_FILE} has no column 'lesion_id'"))
        return (), {}
    classes = tuple(c for c in columns if c != "lesion_id")
    if len(classes) < 2:
        problems.append(
            Problem("missing column", f"{GROUND_TRUTH_FILE} has fewer than two diagnosis columns")
        )
        return classes, {}
    labels: dict[str, str] = {}
    for i, row in enumerate(rows):
        where = f"{GROUND_TRUTH_FILE} row {i} (line {i + 2})"
        lesion = row["lesion_id"].strip()
        values = {c: row[c].strip() for c in classes}
        bad = {c: v for c, v in values.items() if v not in ("0", "1", "0.0", "1.0")}
        positives = [c for c, v in values.items() if v in ("1", "1.0")]
        if bad or len(positives) != 1:
            detail = f"values {bad}" if bad else f"{len(positives)} positive columns {positives}"
            problems.append(Problem("not one-hot", f"{where}, lesion {lesion!r}: not one-hot ({detail})"))
        elif lesion in labels:
            problems.append(Problem("duplicate lesion", f"{where}: lesion {lesion!r} appears twice"))
        else:
            labels[lesion] = positives[0]
    return classes, labels


def _read_supplement(root: Path, isic_ids: set[str], problems: list[Problem]) -> dict[str, dict[str, str]]:
    path = root / SUPPLEMENT_FILE
    if not path.is_file():
        return {}
    columns, rows = read_table(path)
    if "isic_id" not in columns:
        problems.append(Problem("missing column", f"{SUPPLEMENT_FILE} has no column 'isic_id'"))
        return {}
    supplement = {row["isic_id"].strip(): row for row in rows}
    for isic in sorted(set(supplement) - isic_ids):
        problems.append(Problem("unmatched id", f"{SUPPLEMENT_FILE}: image {isic!r} is not in the metadata"))
    for isic in sorted(isic_ids - set(supplement)):
        problems.append(Problem("unmatched id", f"metadata image {isic!r} is not in {SUPPLEMENT_FILE}"))
    return supplement


def _lesion_metadata(rows: Mapping[str, Mapping[str, str]], supplement: Mapping) -> dict:
    """A record's metadata from its two metadata rows (``image_type`` -> row)."""
    first = rows[DERMOSCOPIC]
    site = first["site"].strip() or SITE_NOT_RECORDED
    age = first["age_approx"].strip()
    metadata: dict = {
        "lesion_id": first["lesion_id"].strip(),
        "age_approx": age,
        "age_approx_missing": "0" if age else "1",
        "sex": first["sex"].strip(),
        "skin_tone_class": first["skin_tone_class"].strip(),
        "site": site,
    }
    for image_type, row in rows.items():
        prefix = PREFIX[image_type]
        metadata[f"{prefix}_isic_id"] = row["isic_id"].strip()
        metadata[f"{prefix}_image_manipulation"] = row.get("image_manipulation", "").strip()
        metadata.update({f"{prefix}_{c}": row[c].strip() for c in MONET_COLUMNS})
        extra = supplement.get(row["isic_id"].strip())
        if extra is not None and image_type == DERMOSCOPIC:  # the diagnosis is the lesion's: one copy
            metadata["diagnosis_full"] = extra.get("diagnosis_full", "").strip()
            metadata["diagnosis_confirm_type"] = extra.get("diagnosis_confirm_type", "").strip()
    return metadata


def _pair_images(
    meta_file: str, rows: list[dict[str, str]], problems: list[Problem]
) -> tuple[dict[str, dict[str, dict[str, str]]], dict[str, tuple[str, str]]]:
    """Each lesion's metadata row per image type, and ``{isic_id: (lesion_id, image_type)}``.

    A row of an unknown image type, an image listed twice and a second image of one type are problems.
    """
    by_lesion: dict[str, dict[str, dict[str, str]]] = {}
    images: dict[str, tuple[str, str]] = {}
    for i, row in enumerate(rows):
        where = f"{meta_file} row {i} (line {i + 2})"
        lesion, isic, image_type = (row[c].strip() for c in ("lesion_id", "isic_id", "image_type"))
        if image_type not in IMAGE_TYPES:
            problems.append(
                Problem(
                    "unknown image type",
                    f"{where}: image_type {image_type!r} is not one of {list(IMAGE_TYPES)}",
                )
            )
            continue
        if isic in images:
            problems.append(Problem("duplicate image", f"{where}: image {isic!r} is listed twice"))
            continue
        images[isic] = (lesion, image_type)
        pair = by_lesion.setdefault(lesion, {})
        if image_type in pair:
            problems.append(
                Problem(
                    "two images of one type",
                    f"{where}: lesion {lesion!r} has two {image_type!r} images "
                    f"({pair[image_type]['isic_id'].strip()!r} and {isic!r})",
                )
            )
            continue
        pair[image_type] = row
    return by_lesion, images


def _match_ground_truth(
    meta_file: str, lesions: set[str], labelled: set[str], problems: list[Problem]
) -> None:
    """A problem for each lesion that only the metadata or only the ground truth lists."""
    for lesion in sorted(lesions - labelled):
        problems.append(
            Problem("unmatched id", f"{meta_file}: lesion {lesion!r} has no row in {GROUND_TRUTH_FILE}")
        )
    for lesion in sorted(labelled - lesions):
        problems.append(
            Problem("unmatched id", f"{GROUND_TRUTH_FILE}: lesion {lesion!r} has no row in {meta_file}")
        )


def _lesion_record(
    lesion: str,
    pair: Mapping[str, Mapping[str, str]],
    located: Mapping[str, Path],
    label: str | None,
    supplement: Mapping,
    row: int,
) -> CaseRecord:
    """The record of a lesion whose two images were located (``label`` is ``None`` in the benchmark)."""
    return CaseRecord(
        case_id=lesion,
        primary_path=located[DERMOSCOPIC],
        auxiliary_path=located[CLINICAL],
        labels={TASK: label} if label is not None else {},
        metadata={"row": row, **_lesion_metadata(pair, supplement)},
    )


def parse_release(
    root: str | Path, *, part: str = "training", split_seed: int = 0, allow_outside_root: bool = False
) -> Milk10kRelease:
    """Read a part of the release, collecting every table problem (images are located, not decoded)."""
    if part not in PARTS:
        raise DataError(f"MILK10k part must be one of {list(PARTS)}, got {part!r}")
    root = Path(root)
    problems: list[Problem] = []
    meta_file = METADATA_FILES[part]
    columns, rows = read_table(root / meta_file)
    missing = [c for c in METADATA_COLUMNS if c not in columns]
    training = part == "training"
    classes, labels = _read_ground_truth(root, problems) if training else (CLASSES, {})
    tasks = default_tasks(classes) if len(classes) >= 2 else default_tasks()
    if missing:
        problems += [Problem("missing column", f"{meta_file} has no column {c!r}") for c in missing]
        return Milk10kRelease(root, part, [], {}, tasks, problems)

    by_lesion, images = _pair_images(meta_file, rows, problems)
    supplement = _read_supplement(root, set(images), problems) if training else {}
    if training:
        _match_ground_truth(meta_file, set(by_lesion), set(labels), problems)

    input_dir = root / INPUT_DIRS[part]
    images_present = input_dir.is_dir()  # without it there is nothing to locate (or to lead outside ROOT)
    records: list[CaseRecord | None] = []
    for lesion, pair in by_lesion.items():
        if len(pair) < 2:
            (only,) = pair
            problems.append(
                Problem(
                    "one image",
                    f"{meta_file}: lesion {lesion!r} has only a {only!r} image (needs both types)",
                )
            )
            continue
        if training and lesion not in labels:
            continue
        written = {t: f"{lesion}/{pair[t]['isic_id'].strip()}.jpg" for t in IMAGE_TYPES}
        located = (
            {t: input_dir / w for t, w in written.items()}
            if not images_present
            else locate_images(
                input_dir,
                written,
                root=root,
                allow_outside_root=allow_outside_root,
                where=f"{meta_file}, lesion {lesion!r}",
                problems=problems,
            )
        )
        if located is not None:
            records.append(
                _lesion_record(lesion, pair, located, labels.get(lesion), supplement, len(records))
            )
    if training:
        strata = [r.labels[TASK] for r in records]  # type: ignore[union-attr]
        splits = stratified_split(strata, DEFAULT_RATIOS, seed=split_seed)
    else:
        splits = {BENCHMARK_SPLIT: list(range(len(records)))}
    return Milk10kRelease(
        root, part, records, splits, tasks, problems, images_present=images_present, images=images
    )


def load_release(
    root: str | Path, *, part: str = "training", split_seed: int = 0, allow_outside_root: bool = False
) -> Milk10kRelease:
    """:func:`parse_release`, raising one :class:`DataError` if the tables have any problem."""
    release = parse_release(root, part=part, split_seed=split_seed, allow_outside_root=allow_outside_root)
    raise_for_problems(
        release.problems, f"MILK10k release {release.root}", f"run: mmfuse data check milk10k {root}"
    )
    if not release.images_present:
        warnings.warn(
            f"{release.root}: no {INPUT_DIRS[part]}/ folder; the tables are read without their images",
            stacklevel=2,
        )
    return release


def _folder_index(input_dir: Path) -> dict[str, str]:
    """``{isic_id: lesion folder}`` of every image under ``input_dir`` (to name an image in the wrong folder)."""
    found: dict[str, str] = {}
    if input_dir.is_dir():
        for folder in os.scandir(input_dir):
            if folder.is_dir():
                for entry in os.scandir(folder.path):
                    found.setdefault(Path(entry.name).stem, folder.name)
    return found


def check_release(
    root: str | Path, *, part: str = "training", workers: int | None = None, allow_outside_root: bool = False
) -> list[Problem]:
    """Every problem of a part of the release: tables, pairing, then every image (located and decoded)."""
    try:
        release = parse_release(root, part=part, allow_outside_root=allow_outside_root)
    except DataError as exc:
        return [Problem("missing file", str(exc))]
    problems = [p for p in release.problems if p.kind != "outside root"]  # check_images reports them again
    input_dir = release.root / INPUT_DIRS[part]
    if not input_dir.is_dir():
        return [
            *problems,
            Problem("missing folder", f"image folder {input_dir} not found: no image can be read"),
        ]
    refs: list[ImageRef] = []
    misplaced: list[Problem] = []
    index: dict[str, str] | None = None
    for isic, (lesion, image_type) in release.images.items():
        relative = f"{lesion}/{isic}.jpg"
        if not (input_dir / relative).is_file():
            index = _folder_index(input_dir) if index is None else index
            if isic in index and index[isic] != lesion:
                misplaced.append(
                    Problem(
                        "wrong folder",
                        f"{METADATA_FILES[part]}: image {isic!r} of lesion {lesion!r} lies in the folder of "
                        f"lesion {index[isic]!r} ({INPUT_DIRS[part]}/{index[isic]}/)",
                    )
                )
                continue
        refs.append((f"lesion {lesion!r}, {image_type} image {isic!r}", input_dir, relative))
    return (
        problems
        + misplaced
        + check_images(refs, workers=workers, root=release.root, allow_outside_root=allow_outside_root)
    )
