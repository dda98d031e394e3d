"""Any paired-modality dataset as one CSV table plus a YAML schema: a new dataset is a file, not code.

Schema (paths relative to the schema's folder unless ``root`` is given)::

    table: cases.csv          # the CSV, one row per case
    image_dir: images         # image paths in the table are relative to this folder (default: .)
    primary_dir: dermoscopy   # optional: the primary images' own folder (default: image_dir)
    auxiliary_dir: overview   # optional: the auxiliary images' own folder (default: image_dir)
    primary: primary_image    # column of the primary image path
    auxiliary: auxiliary_image  # optional column; an empty cell marks a missing auxiliary image
    case_id: case             # optional column (default: the row number)
    split: split              # optional column with train / valid / test (default: stratified split)
    group_by: patient         # optional column whose cases stay together in cross-validation folds
    metadata:                 # optional columns exposed on each record (and usable as a model input)
      - age                   #   a column name: numeric if every training value is a number
      - {column: sex, type: categorical}             # or explicit: categorical (one-hot) / numeric
      - {column: site, categories: [head, trunk, limb]}  # a fixed category list
    tasks:
      - name: DIAG
        column: diagnosis     # default: the task name
        classes: [benign, malignant]
        map: {naevus: benign, melanoma: malignant}   # optional raw string -> class
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from mmfuse.data.errors import DataError, Problem, raise_for_problems
from mmfuse.data.images import locate_images
from mmfuse.data.records import CaseRecord, duplicate_case_ids, read_table
from mmfuse.data.split import DEFAULT_RATIOS, SPLIT_NAMES, stratified_split
from mmfuse.metadata import FieldSpec
from mmfuse.tasks import TaskSpec
from mmfuse.yamlio import read_yaml_file

__all__ = ["PairedSchema", "load_paired_csv", "read_schema"]

SCHEMA_KEYS = {
    "table",
    "image_dir",
    "primary_dir",
    "auxiliary_dir",
    "primary",
    "auxiliary",
    "case_id",
    "split",
    "group_by",
    "metadata",
    "tasks",
}
# Schema keys that hold one column or folder name; all but ``table`` and ``primary`` may be null.
STRING_KEYS = (
    "table",
    "primary",
    "image_dir",
    "primary_dir",
    "auxiliary_dir",
    "auxiliary",
    "case_id",
    "split",
    "group_by",
)


@dataclass(frozen=True)
class TaskColumn:
    spec: TaskSpec
    column: str
    mapping: Mapping[str, str] = field(default_factory=dict)

    def classify(self, raw: str) -> str | None:
        value = raw.strip()
        value = self.mapping.get(value, self.mapping.get(value.lower(), value))
        return value if value in self.spec.classes else None


@dataclass(frozen=True)
class PairedSchema:
    table: str
    primary: str
    tasks: tuple[TaskColumn, ...]
    image_dir: str = "."
    auxiliary: str | None = None
    primary_dir: str | None = None  # default: image_dir
    auxiliary_dir: str | None = None  # default: image_dir
    case_id: str | None = None
    split: str | None = None
    metadata_fields: tuple[FieldSpec, ...] = ()
    group_by: str | None = None  # a column on each record (never a model input), the default CV group

    def image_folders(self, root: Path) -> dict[str, Path]:
        """Each image column's folder: its own (``primary_dir``, ``auxiliary_dir``) or ``image_dir``."""
        folders = {self.primary: root / (self.primary_dir or self.image_dir)}
        if self.auxiliary:
            folders[self.auxiliary] = root / (self.auxiliary_dir or self.image_dir)
        return folders

    @property
    def metadata(self) -> tuple[str, ...]:
        """The metadata column names."""
        return tuple(f.name for f in self.metadata_fields)

    @property
    def task_specs(self) -> tuple[TaskSpec, ...]:
        return tuple(t.spec for t in self.tasks)


def _load_schema_file(path: Path) -> dict:
    """The schema file's mapping: known keys only, the required ones present, ``tasks`` a non-empty list."""
    data = read_yaml_file(path, "schema", DataError, missing=DataError)
    if not isinstance(data, dict):
        raise DataError(f"schema {path} must be a mapping with keys {sorted(SCHEMA_KEYS)}")
    unknown = set(data) - SCHEMA_KEYS
    missing = {"table", "primary", "tasks"} - set(data)
    if unknown or missing:
        raise DataError(f"schema {path}: unknown keys {sorted(unknown)}, missing keys {sorted(missing)}")
    if not isinstance(data["tasks"], list) or not data["tasks"]:
        raise DataError(f"schema {path}: 'tasks' must be a non-empty list of tasks, got {data['tasks']!r}")
    return data


def _check_string_keys(path: Path, data: Mapping) -> None:
    """Each column or folder key holds a string (``null`` allowed where the key is optional)."""
    for key in STRING_KEYS:
        optional = key not in ("table", "primary")
        if key in data and not isinstance(data[key], str) and not (optional and data[key] is None):
            raise DataError(f"schema {path}: {key!r} must be a string, got {data[key]!r}")


def _parse_task(where: str, task: object) -> TaskColumn:
    """One entry of ``tasks``: its name, classes, column and raw-value map."""
    if not isinstance(task, Mapping) or "name" not in task or not isinstance(task.get("classes"), list):
        raise DataError(f"{where}: a task is a mapping with 'name' and a list of 'classes', got {task!r}")
    mapping = task.get("map") or {}
    if not isinstance(mapping, Mapping):
        raise DataError(f"{where}: 'map' must map raw values to classes, got {mapping!r}")
    try:
        spec = TaskSpec(str(task["name"]), tuple(str(c) for c in task["classes"]))
    except ValueError as exc:
        raise DataError(f"{where}: {exc}") from None
    unknown = sorted({str(v) for v in mapping.values()} - set(spec.classes))
    if unknown:
        raise DataError(f"{where}: 'map' targets {unknown} are not among its classes {list(spec.classes)}")
    return TaskColumn(
        spec, str(task.get("column", task["name"])), {str(k).strip(): str(v) for k, v in mapping.items()}
    )


def _parse_tasks(path: Path, entries: list) -> tuple[TaskColumn, ...]:
    """The ``tasks`` list, whose names must be distinct."""
    tasks = tuple(_parse_task(f"schema {path}, task {number}", t) for number, t in enumerate(entries))
    if len({t.spec.name for t in tasks}) != len(tasks):
        raise DataError(f"schema {path}: task names repeat: {[t.spec.name for t in tasks]}")
    return tasks


def _parse_metadata(path: Path, columns: object) -> tuple[FieldSpec, ...]:
    """The ``metadata`` list: column names or ``{column, type, categories}`` mappings."""
    if not isinstance(columns, list):
        raise DataError(f"schema {path}: 'metadata' must be a list of columns, got {columns!r}")
    try:
        return tuple(FieldSpec.parse(f) for f in columns)
    except (ValueError, TypeError) as exc:
        raise DataError(f"schema {path}: {exc}") from None


def read_schema(path: str | Path) -> PairedSchema:
    """Parse and validate a schema file; errors name the file and the offending key."""
    path = Path(path)
    data = _load_schema_file(path)
    _check_string_keys(path, data)
    return PairedSchema(
        table=str(data["table"]),
        primary=str(data["primary"]),
        tasks=_parse_tasks(path, data["tasks"]),
        image_dir=str(data.get("image_dir", ".")),
        primary_dir=data.get("primary_dir"),
        auxiliary_dir=data.get("auxiliary_dir"),
        auxiliary=data.get("auxiliary"),
        case_id=data.get("case_id"),
        split=data.get("split"),
        metadata_fields=_parse_metadata(path, data.get("metadata") or []),
        group_by=data.get("group_by"),
    )


@dataclass
class PairedTable:
    root: Path
    schema: PairedSchema
    records: list[CaseRecord | None]
    splits: dict[str, list[int]]
    problems: list[Problem]

    @property
    def tasks(self) -> tuple[TaskSpec, ...]:
        return self.schema.task_specs

    @property
    def metadata_fields(self) -> tuple[FieldSpec, ...]:
        return self.schema.metadata_fields

    @property
    def group_by(self) -> str | None:
        return self.schema.group_by

    def split_records(self, split: str) -> list[CaseRecord]:
        if split not in self.splits:
            raise DataError(f"unknown split {split!r}; splits: {list(self.splits)}")
        return [r for i in self.splits[split] if (r := self.records[i]) is not None]


def _row_labels(schema: PairedSchema, row: Mapping[str, str], where: str, problems: list[Problem]) -> dict:
    """``{task: class}`` of a row; ``None`` (and a problem) for a value no class or ``map`` entry names."""
    labels = {}
    for task in schema.tasks:
        value = task.classify(row[task.column])
        if value is None:
            problems.append(
                Problem(
                    "unknown label",
                    f"{where}, column {task.column!r}: unknown label {row[task.column]!r}",
                )
            )
        labels[task.spec.name] = value
    return labels


def _read_records(
    root: Path,
    schema: PairedSchema,
    rows: list[dict[str, str]],
    *,
    allow_outside_root: bool,
    problems: list[Problem],
) -> list[CaseRecord | None]:
    """One record per row: ``None`` where a label is unknown or the primary image cannot be located."""
    images = schema.image_folders(root)
    records: list[CaseRecord | None] = []
    for i, row in enumerate(rows):
        where = f"{schema.table} row {i} (line {i + 2})"
        labels = _row_labels(schema, row, where, problems)
        if None in labels.values():
            records.append(None)
            continue
        aux_rel = (row.get(schema.auxiliary) or "").strip() if schema.auxiliary else ""
        primary_rel = row[schema.primary].strip()
        written = {c: w for c, w in ((schema.primary, primary_rel), (schema.auxiliary, aux_rel)) if w}
        located = locate_images(
            images, written, root=root, allow_outside_root=allow_outside_root, where=where, problems=problems
        )
        if located is None or schema.primary not in located:
            records.append(None)
            continue
        records.append(
            CaseRecord(
                case_id=(row[schema.case_id].strip() if schema.case_id else "") or str(i),
                primary_path=located[schema.primary],
                auxiliary_path=located.get(schema.auxiliary) if aux_rel else None,
                labels=labels,
                metadata={
                    "row": i,
                    **({schema.group_by: row[schema.group_by]} if schema.group_by else {}),
                    **{c: row[c] for c in schema.metadata},
                },
            )
        )
    return records


def _column_splits(
    schema: PairedSchema, rows: list[dict[str, str]], problems: list[Problem]
) -> dict[str, list[int]]:
    """The splits the ``split`` column names (``train``/``valid``/``test``, any case); a problem per other value."""
    splits: dict[str, list[int]] = {name: [] for name in SPLIT_NAMES}
    for i, row in enumerate(rows):
        value = row[schema.split].strip().lower()
        if value not in splits:
            problems.append(
                Problem("bad split", f"{schema.table} row {i}: split {value!r} not in {SPLIT_NAMES}")
            )
        else:
            splits[value].append(i)
    return splits


def parse_paired_csv(
    root: str | Path,
    schema: str | Path | PairedSchema,
    *,
    split_seed: int = 0,
    allow_outside_root: bool = False,
) -> PairedTable:
    """Read the table described by ``schema``, collecting every problem (images are located, not decoded)."""
    root = Path(root)
    if not isinstance(schema, PairedSchema):
        schema = read_schema(schema)
    columns, rows = read_table(root / schema.table)
    needed = [schema.primary, *(t.column for t in schema.tasks), *schema.metadata]
    needed += [c for c in (schema.auxiliary, schema.case_id, schema.split, schema.group_by) if c]
    problems = [
        Problem("missing column", f"{schema.table} has no column {c!r}") for c in needed if c not in columns
    ]
    if problems:
        return PairedTable(root, schema, [None] * len(rows), {}, problems)
    records = _read_records(root, schema, rows, allow_outside_root=allow_outside_root, problems=problems)
    problems += duplicate_case_ids(records, schema.table)
    if schema.split:
        splits = _column_splits(schema, rows, problems)
    else:
        first = schema.tasks[0].spec.name
        strata = [r.labels[first] if r is not None else "?" for r in records]
        splits = stratified_split(strata, DEFAULT_RATIOS, seed=split_seed)
        warnings.warn(
            f"{root / schema.table}: no split column; using a stratified split by {first}", stacklevel=2
        )
    problems += [
        Problem("empty split", f"split {n!r} has no cases") for n, rows_ in splits.items() if not rows_
    ]
    return PairedTable(root, schema, records, splits, problems)


def load_paired_csv(
    root: str | Path,
    schema: str | Path | PairedSchema,
    *,
    split_seed: int = 0,
    allow_outside_root: bool = False,
) -> PairedTable:
    table = parse_paired_csv(root, schema, split_seed=split_seed, allow_outside_root=allow_outside_root)
    raise_for_problems(table.problems, f"{Path(root) / table.schema.table}", "fix the rows above")
    return table
