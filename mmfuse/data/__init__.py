"""Paired-modality datasets: formats (Derm7pt, CSV + YAML schema, plugins'), augmentation, cache, checks.

The generic layer speaks of a *primary* and an *auxiliary* image per case; a format decides which
modality is which (for Derm7pt: dermoscopy is primary, the clinical photograph auxiliary). Formats are
registered by plugins (:class:`DatasetFormat`, the ``register_dataset_formats`` hook).
"""

from mmfuse.data.build import build_dataset, fit_metadata_encoding, load_table
from mmfuse.data.cache import PreparedCache, load_cache, prepare_cache
from mmfuse.data.errors import DataError, Problem, raise_for_problems
from mmfuse.data.formats import (
    DataOptions,
    DatasetFormat,
    DatasetTable,
    FormatOption,
    UnknownFormatError,
    get_format,
)
from mmfuse.data.images import OutsideRootError, resolve_image_path
from mmfuse.data.paired import PairedDataset
from mmfuse.data.records import CaseRecord, class_counts, duplicate_case_ids
from mmfuse.data.split import SPLIT_NAMES, stratified_split
from mmfuse.data.validate import check_images, check_paired_csv
from mmfuse.registry import register_dataset_format

__all__ = [
    "SPLIT_NAMES",
    "CaseRecord",
    "DataError",
    "DataOptions",
    "DatasetFormat",
    "DatasetTable",
    "FormatOption",
    "OutsideRootError",
    "PairedDataset",
    "PreparedCache",
    "Problem",
    "UnknownFormatError",
    "build_dataset",
    "check_images",
    "check_paired_csv",
    "class_counts",
    "duplicate_case_ids",
    "fit_metadata_encoding",
    "get_format",
    "load_cache",
    "load_table",
    "prepare_cache",
    "raise_for_problems",
    "register_dataset_format",
    "resolve_image_path",
    "stratified_split",
]
