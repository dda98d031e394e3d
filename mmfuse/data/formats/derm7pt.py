"""The Derm7pt release (Kawahara et al., 2018): its layout, the paper's label grouping, its splits.

Layout under ROOT::

    meta/meta.csv                      one row per case: raw label strings, image paths, metadata
    meta/{train,valid,test}_indexes.csv   column ``indexes``: row positions into meta.csv
    images/<clinic path>, images/<derm path>

The dermoscopic image (``derm``) is the primary modality, the clinical image (``clinic``) the
auxiliary one. Nine real cases have no clinical image: their ``clinic`` path repeats ``derm`` and their
``notes`` say so; they become records with ``auxiliary_path=None``.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from mmfuse.data.errors import DataError, Problem, raise_for_problems
from mmfuse.data.images import locate_images
from mmfuse.data.records import CaseRecord, duplicate_case_ids, read_table
from mmfuse.data.split import SPLIT_NAMES, stratified_split
from mmfuse.data.validate import ImageRef, check_images
from mmfuse.metadata import EncodedField, FieldSpec, MetadataEncoding
from mmfuse.tasks import DERM7PT_TASKS, TaskSpec

__all__ = ["Derm7ptRelease", "METADATA_FIELDS", "check_release", "load_release", "official_metadata_encoding"]

META_FILE = "meta/meta.csv"
IMAGE_DIR = "images"
PRIMARY_COLUMN = "derm"
AUXILIARY_COLUMN = "clinic"


# The official split has 413 / 203 / 395 cases; the fallback split keeps those proportions.
OFFICIAL_SPLIT_RATIOS: Mapping[str, float] = {"train": 413 / 1011, "valid": 203 / 1011, "test": 395 / 1011}


def split_file(name: str) -> str:
    return f"meta/{name}_indexes.csv"


# Task name -> meta.csv column holding its raw label string.
TASK_COLUMNS: Mapping[str, str] = {
    "DIAG": "diagnosis",
    "PN": "pigment_network",
    "STR": "streaks",
    "PIG": "pigmentation",
    "RS": "regression_structures",
    "DaG": "dots_and_globules",
    "BWV": "blue_whitish_veil",
    "VS": "vascular_structures",
}

_NEVI = ("blue nevus", "clark nevus", "combined nevus", "congenital nevus", "dermal nevus")
_NEVI += ("recurrent nevus", "reed or spitz nevus")
_MELANOMAS = ("melanoma", "melanoma (in situ)", "melanoma (less than 0.76 mm)", "melanoma (0.76 to 1.5 mm)")
_MELANOMAS += ("melanoma (more than 1.5 mm)", "melanoma metastasis")
_MISC = ("dermatofibroma", "lentigo", "melanosis", "miscellaneous", "vascular lesion")

# Raw label string (lower case) -> the paper's Table 1 class, per task.
RAW_TO_CLASS: Mapping[str, Mapping[str, str]] = {
    "DIAG": {
        "basal cell carcinoma": "BCC",
        "seborrheic keratosis": "SK",
        **dict.fromkeys(_NEVI, "NEV"),
        **dict.fromkeys(_MELANOMAS, "MEL"),
        **dict.fromkeys(_MISC, "MISC"),
    },
    "PN": {"absent": "ABS", "typical": "TYP", "atypical": "ATP"},
    "STR": {"absent": "ABS", "regular": "REG", "irregular": "IR"},
    "PIG": {
        "absent": "ABS",
        "diffuse regular": "REG",
        "localized regular": "REG",
        "diffuse irregular": "IR",
        "localized irregular": "IR",
    },
    "RS": {"absent": "ABS", "blue areas": "PRS", "white areas": "PRS", "combinations": "PRS"},
    "DaG": {"absent": "ABS", "regular": "REG", "irregular": "IR"},
    "BWV": {"absent": "ABS", "present": "PRS"},
    "VS": {
        "absent": "ABS",
        "arborizing": "REG",
        "comma": "REG",
        "hairpin": "REG",
        "within regression": "REG",
        "wreath": "REG",
        "dotted": "IR",
        "linear irregular": "IR",
    },
}

# Metadata exposed on each record: record key -> meta.csv column.
METADATA_COLUMNS: Mapping[str, str] = {
    "difficulty": "level_of_diagnostic_difficulty",
    "elevation": "elevation",
    "location": "location",
    "sex": "sex",
    "management": "management",
}

# The metadata vector of the official FusionM4Net and TFormer code: five categorical fields one-hot
# encoded with these category lists, 3 + 3 + 9 + 2 + 3 = 20 values. ``difficulty`` and ``management``
# are clinicians' judgements made with the diagnosis in mind; results that use them are comparable
# with those papers, not a test of what a patient's record alone predicts.
METADATA_FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec("difficulty", "categorical", ("low", "medium", "high")),
    FieldSpec("elevation", "categorical", ("flat", "palpable", "nodular")),
    FieldSpec(
        "location",
        "categorical",
        (
            "back",
            "lower limbs",
            "abdomen",
            "upper limbs",
            "chest",
            "head neck",
            "acral",
            "buttocks",
            "genital areas",
        ),
    ),
    FieldSpec("sex", "categorical", ("female", "male")),
    FieldSpec("management", "categorical", ("excision", "clinical follow up", "no further examination")),
)


def official_metadata_encoding() -> MetadataEncoding:
    """The 20-value encoding of :data:`METADATA_FIELDS` (fixed category lists: nothing to fit)."""
    return MetadataEncoding(
        [EncodedField(f.name, "categorical", f.categories) for f in METADATA_FIELDS]  # type: ignore[arg-type]
    )


REQUIRED_COLUMNS: tuple[str, ...] = (*TASK_COLUMNS.values(), AUXILIARY_COLUMN, PRIMARY_COLUMN)
ALL_COLUMNS: tuple[str, ...] = (
    "case_num",
    "diagnosis",
    "seven_point_score",
    *(c for c in TASK_COLUMNS.values() if c != "diagnosis"),
    *METADATA_COLUMNS.values(),
    AUXILIARY_COLUMN,
    PRIMARY_COLUMN,
    "case_id",
    "notes",
)


def group_label(task: str, raw: str) -> str:
    """The Table 1 class of a raw Derm7pt label string (case and surrounding spaces ignored)."""
    try:
        table = RAW_TO_CLASS[task]
    except KeyError:
        raise DataError(f"unknown Derm7pt task {task!r}; tasks: {list(RAW_TO_CLASS)}") from None
    try:
        return table[raw.strip().lower()]
    except KeyError:
        raise DataError(
            f"unknown {TASK_COLUMNS[task]} label {raw!r}; expected one of {sorted(table)}"
        ) from None


# Argenziano's seven-point checklist: (task, the class that meets the criterion, points, what it is). The major
# criteria count 2, the minor ones 1. The score, and the page that explains it, read this one table.
SEVEN_POINT_CRITERIA: tuple[tuple[str, str, int, str], ...] = (
    ("PN", "ATP", 2, "atypical pigment network"),
    ("BWV", "PRS", 2, "blue-whitish veil"),
    ("VS", "IR", 2, "irregular vessels"),
    ("STR", "IR", 1, "irregular streaks"),
    ("PIG", "IR", 1, "irregular pigmentation"),
    ("DaG", "IR", 1, "irregular dots/globules"),
    ("RS", "PRS", 1, "regression structures"),
)


def seven_point_score(labels: Mapping[str, str]) -> int:
    """The seven-point checklist score of grouped labels (:data:`SEVEN_POINT_CRITERIA`)."""
    return sum(points for task, cls, points, _ in SEVEN_POINT_CRITERIA if labels[task] == cls)


def auxiliary_is_missing(row: Mapping[str, str]) -> bool:
    """True for the cases whose clinical image was replaced by the dermoscopic one (or is blank)."""
    clinic = (row.get(AUXILIARY_COLUMN) or "").strip()
    return not clinic or clinic.lower() == (row.get(PRIMARY_COLUMN) or "").strip().lower()


@dataclass
class Derm7ptRelease:
    """A parsed release: the records (rows that parsed), the splits and every problem found on the way."""

    root: Path
    columns: tuple[str, ...]
    rows: list[dict[str, str]]
    records: list[CaseRecord | None]
    splits: dict[str, list[int]]
    split_source: str  # "files" or "stratified"
    problems: list[Problem] = field(default_factory=list)
    tasks: tuple[TaskSpec, ...] = DERM7PT_TASKS
    metadata_fields: tuple[FieldSpec, ...] = METADATA_FIELDS

    def split_records(self, split: str) -> list[CaseRecord]:
        if split not in self.splits:
            raise DataError(f"unknown split {split!r}; splits: {list(self.splits)}")
        return [r for i in self.splits[split] if (r := self.records[i]) is not None]


def _is_ascii_int(text: str) -> bool:
    """``"12"`` yes; ``"²"`` or ``"١٢"`` no (``str.isdigit`` accepts them, ``int`` does not or should not)."""
    return text.isascii() and text.isdecimal()


def _parse_row(
    root: Path,
    position: int,
    row: Mapping[str, str],
    problems: list[Problem],
    allow_outside_root: bool = False,
) -> CaseRecord | None:
    line = position + 2  # header is line 1
    where = f"{META_FILE} row {position} (line {line})"
    labels: dict[str, str] = {}
    for task, column in TASK_COLUMNS.items():
        raw = row.get(column, "")
        try:
            labels[task] = group_label(task, raw)
        except DataError:
            problems.append(Problem("unknown label", f"{where}, column {column!r}: unknown label {raw!r}"))
    if len(labels) < len(TASK_COLUMNS):
        return None
    columns = [PRIMARY_COLUMN] + ([] if auxiliary_is_missing(row) else [AUXILIARY_COLUMN])
    located = locate_images(
        root / IMAGE_DIR,
        {column: row[column].strip() for column in columns},
        root=root,
        allow_outside_root=allow_outside_root,
        where=where,
        problems=problems,
    )
    if located is None:
        return None
    primary = located[PRIMARY_COLUMN]
    auxiliary: Path | None = located.get(AUXILIARY_COLUMN)
    score_text = (row.get("seven_point_score") or "").strip()
    metadata: dict = {key: row.get(column, "") for key, column in METADATA_COLUMNS.items()}
    metadata.update(
        row=position,
        diagnosis=row.get("diagnosis", ""),
        seven_point_score=int(score_text) if _is_ascii_int(score_text.removeprefix("-")) else None,
        notes=row.get("notes", ""),
        auxiliary_missing=auxiliary is None,
    )
    case_id = (row.get("case_num") or "").strip() or str(position + 1)
    return CaseRecord(case_id, primary, auxiliary, labels, metadata)


def _read_split_files(root: Path, n_rows: int, problems: list[Problem]) -> dict[str, list[int]] | None:
    present = {name: root / split_file(name) for name in SPLIT_NAMES if (root / split_file(name)).is_file()}
    if not present:
        return None
    splits: dict[str, list[int]] = {}
    owner: dict[int, str] = {}
    for name in SPLIT_NAMES:
        if name not in present:
            problems.append(Problem("missing file", f"split file {split_file(name)} not found"))
            splits[name] = []
            continue
        columns, rows = read_table(present[name])
        if "indexes" not in columns:
            problems.append(
                Problem(
                    "missing column", f"{split_file(name)} has no column 'indexes' (columns: {list(columns)})"
                )
            )
            splits[name] = []
            continue
        positions = []
        for i, row in enumerate(rows):
            text = row["indexes"].strip()
            where = f"{split_file(name)} row {i}"
            if not _is_ascii_int(text):
                problems.append(Problem("bad index", f"{where}: {text!r} is not a row position"))
            elif int(text) >= n_rows:
                problems.append(
                    Problem("bad index", f"{where}: index {text} is outside meta.csv ({n_rows} rows)")
                )
            elif int(text) in owner:
                problems.append(
                    Problem("bad index", f"{where}: index {text} is already in split {owner[int(text)]!r}")
                )
            else:
                owner[int(text)] = name
                positions.append(int(text))
        if not positions:
            problems.append(Problem("empty split", f"split {name!r} ({split_file(name)}) has no cases"))
        splits[name] = positions
    return splits


def parse_release(
    root: str | Path, *, split_seed: int = 0, allow_outside_root: bool = False
) -> Derm7ptRelease:
    """Read ``meta/`` of a release and collect every table-level problem instead of stopping at one.

    Images are located (not decoded). Without split files the cases are split by
    :func:`mmfuse.data.split.stratified_split` on the diagnosis class, with a warning.
    """
    root = Path(root)
    columns, rows = read_table(root / META_FILE)
    problems = [
        Problem("missing column", f"{META_FILE} has no column {c!r}")
        for c in REQUIRED_COLUMNS
        if c not in columns
    ]
    if problems:
        return Derm7ptRelease(root, columns, rows, [None] * len(rows), {}, "none", problems)
    records = [_parse_row(root, i, row, problems, allow_outside_root) for i, row in enumerate(rows)]
    problems += duplicate_case_ids(records, META_FILE)
    splits = _read_split_files(root, len(rows), problems)
    source = "files"
    if splits is None:
        source = "stratified"
        strata = [r.labels["DIAG"] if r is not None else "?" for r in records]
        splits = stratified_split(strata, OFFICIAL_SPLIT_RATIOS, seed=split_seed)
        warnings.warn(
            f"{root}: no split files under meta/; using a stratified split by diagnosis "
            f"(train/valid/test = {', '.join(f'{v:.3f}' for v in OFFICIAL_SPLIT_RATIOS.values())}, seed {split_seed})",
            stacklevel=2,
        )
    return Derm7ptRelease(root, columns, rows, records, splits, source, problems)


def load_release(
    root: str | Path, *, split_seed: int = 0, allow_outside_root: bool = False
) -> Derm7ptRelease:
    """:func:`parse_release`, raising one :class:`DataError` if the tables have any problem."""
    release = parse_release(root, split_seed=split_seed, allow_outside_root=allow_outside_root)
    raise_for_problems(
        release.problems, f"Derm7pt release {release.root}", f"run: mmfuse data check derm7pt {root}"
    )
    return release


def _image_refs(release: Derm7ptRelease) -> list[ImageRef]:
    images = release.root / IMAGE_DIR
    refs = []
    for i, row in enumerate(release.rows):
        where = f"{META_FILE} row {i} (line {i + 2})"
        refs.append((f"{where}, column {PRIMARY_COLUMN!r}", images, row[PRIMARY_COLUMN].strip()))
        if not auxiliary_is_missing(row):
            refs.append(
                (
                    f"{where}, column {AUXILIARY_COLUMN!r}",
                    images,
                    row[AUXILIARY_COLUMN].strip(),
                )
            )
    return refs


def check_release(
    root: str | Path, *, images: bool = True, workers: int | None = None, allow_outside_root: bool = False
) -> list[Problem]:
    """All problems of a Derm7pt release: tables, split files and (unless ``images=False``) every image."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a missing split is not a problem for check
            release = parse_release(root, allow_outside_root=allow_outside_root)
    except DataError as exc:
        return [Problem("missing file", str(exc))]
    problems = list(release.problems)
    if images and all(c in release.columns for c in REQUIRED_COLUMNS):
        problems = [p for p in problems if p.kind != "outside root"]  # check_images reports them again
        problems += check_images(
            _image_refs(release), workers=workers, root=release.root, allow_outside_root=allow_outside_root
        )
    return problems
