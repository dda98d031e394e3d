"""Dataset formats: how a paired-modality dataset lies on disk, one registered class per layout.

A format turns data options (``root``, ``split_seed``, ``allow_outside_root`` and its own keys, such as
``paired_csv``'s ``schema``) into a table of :class:`~mmfuse.data.records.CaseRecord` with splits, tasks
and metadata fields. Everything downstream (datasets, caches, checks, statistics, training) reads only
that table, so a new layout needs a format and nothing else. Formats are registered through the
``register_dataset_formats`` hook, which the built-in ``derm7pt`` and ``paired_csv`` use too.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

from mmfuse.data.errors import Problem
from mmfuse.errors import DataError, PluginError, UnknownNameError

DEFAULT_FORMAT = "derm7pt"


class UnknownFormatError(DataError, UnknownNameError):
    """``data.format`` names no registered dataset format; the message lists the registered ones."""


@dataclass(frozen=True)
class FormatOption:
    """A data option only some formats read (``paired_csv``'s ``schema``)."""

    help: str  # completes "data format 'NAME' needs 'KEY', ..." and the CLI help
    required: bool = False
    path: bool = False  # a file: made absolute when a run starts, kept off public model cards
    metavar: str | None = None  # how the command line shows its value (SCHEMA.yaml)


@dataclass(frozen=True)
class DataOptions:
    """What a format's :meth:`DatasetFormat.load` receives: the checked data options, defaults filled in."""

    root: Path
    split_seed: int = 0
    allow_outside_root: bool = False
    format_options: Mapping[str, Any] = field(default_factory=dict)  # the format's own keys that were set

    def __getitem__(self, key: str) -> Any:
        return self.format_options[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.format_options.get(key, default)


@runtime_checkable
class DatasetTable(Protocol):
    """What :meth:`DatasetFormat.load` returns (``Derm7ptRelease`` and ``PairedTable`` are two).

    ``records[i]`` is ``None`` for a row that could not be used; ``splits`` maps split name to
    positions in ``records``; ``metadata_fields`` are the fields ``data.metadata: true`` encodes
    (empty when the format has none).
    """

    root: Path
    records: list
    splits: dict[str, list[int]]
    tasks: tuple
    metadata_fields: tuple

    def split_records(self, split: str) -> list: ...


class DatasetFormat:
    """One dataset layout. Subclass it, implement :meth:`load`, register the class.

    ``options`` declares the data keys this format reads besides the common ones; a required one that
    is missing fails before anything is read. Override :meth:`check` to report problems the table
    alone cannot (the default decodes every image the loaded table names).
    """

    description: ClassVar[str] = ""
    options: ClassVar[Mapping[str, FormatOption]] = {}
    # The Hub dataset id a model card names for a model trained on (real, not synthetic) data of this format.
    hub_dataset: ClassVar[str | None] = None
    # The id column of a challenge submission file written for this format's single-task runs.
    submission_id_column: ClassVar[str] = "case_id"
    # The data options and split of the format's unlabelled benchmark part (``predict --benchmark``), if any.
    benchmark_options: ClassVar[Mapping[str, Any] | None] = None
    benchmark_split: ClassVar[str] = "benchmark"

    def load(self, options: DataOptions) -> DatasetTable:
        """The parsed table; raise :class:`~mmfuse.errors.DataError` listing every table problem."""
        raise NotImplementedError(f"{type(self).__name__} must implement load(options)")

    def check(self, options: DataOptions, *, workers: int | None = None) -> list[Problem]:
        """Every problem of the dataset: the table's (as :meth:`load` raises them), then every image."""
        from mmfuse.data.validate import check_images

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # e.g. "no split files": not a problem for a check
                table = self.load(options)
        except DataError as exc:
            return [Problem("table", str(exc))]
        refs = []
        for record in (r for r in table.records if r is not None):
            for modality, path in (("primary", record.primary_path), ("auxiliary", record.auxiliary_path)):
                if path is not None:
                    refs.append(
                        (f"{record.describe()}, {modality} image", Path(path).parent, Path(path).name)
                    )
        return check_images(
            refs, workers=workers, root=options.root, allow_outside_root=options.allow_outside_root
        )


def get_format(name: object) -> DatasetFormat:
    """The format registered as ``name``; :class:`UnknownFormatError` lists the registered ones."""
    from mmfuse.registry import DATASET_FORMATS

    if not isinstance(name, str) or name not in DATASET_FORMATS:
        raise UnknownFormatError(
            f"unknown data format {name!r}; registered: {', '.join(DATASET_FORMATS.names()) or '(none)'}"
            + _failed_plugins_note()
        )
    entry = DATASET_FORMATS.entry(name)
    fmt = entry.obj()
    if not isinstance(fmt, DatasetFormat):
        raise PluginError(
            f"dataset format {name!r} (from plugin {entry.provider!r}) must be a mmfuse.data.DatasetFormat, "
            f"got {type(fmt).__name__}"
        )
    return fmt


def _failed_plugins_note() -> str:
    from mmfuse.registry import failed_plugins

    failed = failed_plugins()
    return f". Plugins that failed to load: {', '.join(sorted(failed))}" if failed else ""


def format_option_keys() -> set[str]:
    """Every data key some registered format reads (a data config may hold any of them)."""
    from mmfuse.registry import DATASET_FORMATS

    return {key for name in DATASET_FORMATS.names() for key in get_format(name).options}


def path_option_keys() -> set[str]:
    """Format keys that hold file paths (``schema``): resolved when a run starts, private on model cards."""
    from mmfuse.registry import DATASET_FORMATS

    return {
        key
        for name in DATASET_FORMATS.names()
        for key, option in get_format(name).options.items()
        if option.path
    }


def data_options(data_config: Mapping, fmt: DatasetFormat) -> DataOptions:
    """The :class:`DataOptions` a format loads from, out of a checked data config."""
    return DataOptions(
        root=Path(data_config["root"]),
        split_seed=data_config.get("split_seed", 0),
        allow_outside_root=data_config.get("allow_outside_root", False),
        format_options={
            key: data_config[key] for key in fmt.options if data_config.get(key) not in (None, "")
        },
    )
