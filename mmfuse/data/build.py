"""``build_dataset``: a data config and a split name in, a :class:`PairedDataset` out."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from pathlib import Path

from mmfuse.data.augment import MODALITIES, build_augmenter
from mmfuse.data.cache import load_cache
from mmfuse.data.formats import DEFAULT_FORMAT, DatasetTable, data_options, format_option_keys, get_format
from mmfuse.data.paired import PairedDataset
from mmfuse.data.split import cross_validation_splits
from mmfuse.errors import DataError
from mmfuse.metadata import EncodingReport, FieldSpec, MetadataEncoding
from mmfuse.tasks import TaskSpec, check_same_tasks

# Keys every format understands; a format adds its own (paired_csv: schema) through ``options``.
CONFIG_KEYS = {
    "format",
    "root",
    "cache",
    "augment",
    "backend",
    "split_seed",
    "metadata",
    "allow_outside_root",
    "cv",
}
CV_KEYS = {"folds", "fold", "group_by", "seed"}


def check_data_options(data_config: Mapping) -> None:
    """Raise :class:`DataError` naming the first key or value of a data config no dataset can be built from.

    Run before anything is read, so a misspelt key is reported as such rather than as a missing file.
    """
    name = data_config.get("format", DEFAULT_FORMAT)
    fmt = get_format(name)  # first: which keys are known depends on the registered formats
    known = CONFIG_KEYS | format_option_keys()
    unknown = set(data_config) - known
    if unknown:
        raise DataError(f"unknown data config keys {sorted(unknown)}; known: {sorted(known)}")
    root = data_config.get("root")
    if not isinstance(root, (str, Path)) or not str(root):
        raise DataError(f"the data config needs 'root', the dataset folder, got {root!r}")
    for key, option in fmt.options.items():
        if option.required and not data_config.get(key):
            raise DataError(f"data format {name!r} needs {key!r}, {option.help}")
    if data_config.get("cache", "auto") not in ("auto", "off"):
        raise DataError(f"data config 'cache' must be 'auto' or 'off', got {data_config['cache']!r}")
    outside = data_config.get("allow_outside_root", False)
    if not isinstance(outside, bool):
        raise DataError(f"data.allow_outside_root must be true or false, got {outside!r}")
    seed = data_config.get("split_seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise DataError(f"data.split_seed must be an integer in [0, 2**32), got {seed!r}")
    if data_config.get("cv") is not None:
        _check_cv(data_config["cv"])


def _check_cv(cv: object) -> None:
    if not isinstance(cv, Mapping) or set(cv) - CV_KEYS or not {"folds", "fold"} <= set(cv):
        raise DataError(
            f"data.cv is a mapping with 'folds', 'fold' and optionally 'group_by', 'seed'; got {cv!r}"
        )
    folds, fold, seed = cv["folds"], cv["fold"], cv.get("seed", 0)
    if any(isinstance(v, bool) or not isinstance(v, int) for v in (folds, fold, seed)):
        raise DataError(f"data.cv folds, fold and seed must be integers, got {dict(cv)!r}")
    if folds < 2 or not 0 <= fold < folds or not 0 <= seed < 2**32:
        raise DataError(
            f"data.cv needs folds >= 2, 0 <= fold < folds and seed in [0, 2**32); got {dict(cv)!r}"
        )
    if not isinstance(cv.get("group_by", "case_id"), str) or not cv.get("group_by", "case_id"):
        raise DataError(f"data.cv.group_by must name a record field (e.g. case_id), got {cv['group_by']!r}")


def default_group_by(table: DatasetTable) -> str:
    """The field cross-validation groups by unless told: the table's own (a schema's ``group_by``), else the case id."""
    return getattr(table, "group_by", None) or "case_id"


def case_groups(table: DatasetTable, group_by: str | None = None) -> list[str]:
    """The group of every usable record: its ``case_id`` or one of its metadata fields (a patient id)."""
    group_by = group_by or default_group_by(table)
    records = [r for r in table.records if r is not None]
    if group_by == "case_id":
        return [r.case_id for r in records]
    missing = [r.describe() for r in records if str(r.metadata.get(group_by, "")).strip() == ""]
    if missing:
        raise DataError(
            f"cross-validation groups by {group_by!r}, but {len(missing)} case(s) have no value for it "
            f"(first: {missing[0]}); name a field every case has (fields: {sorted(records[0].metadata)})"
        )
    return [str(r.metadata[group_by]).strip() for r in records]


def with_cv_splits(table: DatasetTable, cv: Mapping) -> DatasetTable:
    """A copy of ``table`` whose splits are fold ``cv["fold"]`` of a grouped, stratified k-fold split.

    Strata are the first task's classes; groups (``cv["group_by"]``, default :func:`default_group_by`) never straddle
    two folds, so no lesion or patient is in both the training and the test split.
    """
    _check_cv(cv)
    positions = [i for i, r in enumerate(table.records) if r is not None]
    records = [table.records[i] for i in positions]
    task = table.tasks[0].name
    splits = cross_validation_splits(
        [r.labels[task] for r in records],
        case_groups(table, cv.get("group_by")),
        cv["folds"],
        cv["fold"],
        seed=cv.get("seed", 0),
    )
    copied = copy.copy(table)
    copied.splits = {name: [positions[i] for i in members] for name, members in splits.items()}
    return copied


def load_table(data_config: Mapping) -> DatasetTable:
    """The parsed table of a data config, read by its registered format (raises on any table problem)."""
    check_data_options(data_config)
    fmt = get_format(data_config.get("format", DEFAULT_FORMAT))
    table = fmt.load(data_options(data_config, fmt))
    return table if data_config.get("cv") is None else with_cv_splits(table, data_config["cv"])


def fit_metadata_encoding(
    data_config: Mapping, split: str = "train"
) -> tuple[MetadataEncoding, EncodingReport]:
    """Fit the metadata encoding of a data config on ``split`` (the training split: nothing else is seen).

    ``metadata: true`` encodes the fields the format declares (Derm7pt: the official 20-value
    vector; a paired CSV: its schema's ``metadata`` list); a list of names or field mappings picks some.
    Returns the encoding and the report of missing and unknown values in ``split``.
    """
    table = load_table(data_config)
    choice = data_config.get("metadata")
    fields = tuple(getattr(table, "metadata_fields", ()))
    declared = {f.name: f for f in fields}
    if choice is True:
        specs = list(fields)
    elif isinstance(choice, (list, tuple)) and choice:
        specs = [declared.get(c, FieldSpec(c)) if isinstance(c, str) else FieldSpec.parse(c) for c in choice]
    else:
        raise DataError(f"data.metadata must be true or a list of metadata fields, got {choice!r}")
    if not specs:
        raise DataError(f"the {data_config.get('format', DEFAULT_FORMAT)} data declares no metadata fields")
    records = table.split_records(split)
    try:
        encoding = MetadataEncoding.fit([r.metadata for r in records], specs)
    except ValueError as exc:
        raise DataError(f"{Path(data_config['root'])}: {exc}") from None
    _, _, report = encoding.encode([r.metadata for r in records])
    return encoding, report


def build_dataset(
    data_config: Mapping,
    split: str,
    *,
    train: bool,
    img_size: int,
    mean: Sequence[float],
    std: Sequence[float],
    seed: int = 0,
    metadata_encoding: MetadataEncoding | None = None,
    tasks: Sequence[TaskSpec] | None = None,
    labelled: bool = True,
) -> PairedDataset:
    """One split of the dataset a config describes, with per-modality augmentation.

    ``augment`` options apply to both modalities; a nested ``primary:`` or ``auxiliary:`` mapping
    overrides them for one. ``cache: auto`` (the default) uses a fresh prepared cache for ``img_size``.
    ``tasks`` (the model's) must equal the data's tasks, else :class:`~mmfuse.tasks.TaskMismatchError`.
    """
    cache_mode = data_config.get("cache", "auto")
    table = load_table(data_config)
    if tasks is not None:
        check_same_tasks(
            tasks, table.tasks, f"{data_config['root']} ({data_config.get('format', DEFAULT_FORMAT)})"
        )
    options = dict(data_config.get("augment") or {})
    per_modality = {m: dict(options.pop(m, None) or {}) for m in MODALITIES}
    augmenters = {
        m: build_augmenter(
            m,
            train=train,
            img_size=img_size,
            mean=mean,
            std=std,
            backend=data_config.get("backend", "albumentations"),
            **{**options, **per_modality[m]},
        )
        for m in MODALITIES
    }
    root = Path(data_config["root"])
    return PairedDataset(
        table.split_records(split),
        table.tasks,
        img_size=img_size,
        primary_augmenter=augmenters["primary"],
        auxiliary_augmenter=augmenters["auxiliary"],
        seed=seed,
        root=root,
        cache=load_cache(root, img_size) if cache_mode == "auto" else None,
        metadata_encoding=metadata_encoding,
        labelled=labelled,
    )
