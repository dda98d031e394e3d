"""The dataset every format turns into: paired primary/auxiliary images with one label per task.

Nothing here knows which modalities the images are; formats (Derm7pt, a CSV with a YAML schema)
only produce :class:`~mmfuse.data.records.CaseRecord` lists.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from mmfuse.data.augment import Augmenter, sample_seed
from mmfuse.data.cache import PreparedCache
from mmfuse.data.errors import DataError
from mmfuse.data.images import augmentation_margin, load_resized
from mmfuse.data.records import CaseRecord
from mmfuse.metadata import EncodingReport, MetadataEncoding
from mmfuse.tasks import TaskSpec

PRIMARY_STREAM, AUXILIARY_STREAM = 0, 1


def encode_labels(records: Sequence[CaseRecord], tasks: Sequence[TaskSpec]) -> torch.Tensor:
    """int64 [N, T]: each record's class index per task; an unknown class names its case."""
    matrix = torch.empty((len(records), len(tasks)), dtype=torch.int64)
    for i, record in enumerate(records):
        for j, task in enumerate(tasks):
            try:
                matrix[i, j] = task.index(record.labels[task.name])
            except (KeyError, ValueError) as exc:
                raise DataError(f"{record.describe()}: {exc}") from None
    return matrix


class PairedDataset(Dataset):
    """Items are dicts: ``primary`` and ``auxiliary`` float [3, S, S], ``auxiliary_present`` (bool),
    ``labels`` int64 [T] in the order of ``tasks`` (-1 when built with ``labelled=False``), ``index`` and ``case_id``; with a
    ``metadata_encoding``, also ``metadata`` (float [D]) and ``metadata_present`` (bool).

    A missing auxiliary image is all zeros with ``auxiliary_present=False``; what to do with it is the
    trainer's choice. Augmentation is seeded by (seed, epoch, index), so it does not depend on the
    number of workers or on what ran before; call :meth:`set_epoch` at the start of each epoch (with
    ``persistent_workers`` the workers hold their own copy, so recreate the loader's iterator).
    """

    def __init__(
        self,
        records: Sequence[CaseRecord],
        tasks: Sequence[TaskSpec],
        *,
        img_size: int,
        primary_augmenter: Augmenter,
        auxiliary_augmenter: Augmenter,
        seed: int = 0,
        root: str | Path | None = None,
        cache: PreparedCache | None = None,
        metadata_encoding: MetadataEncoding | None = None,
        labelled: bool = True,
    ) -> None:
        self.records = list(records)
        self.tasks = tuple(tasks)
        self.img_size = int(img_size)
        self.load_size = self.img_size + augmentation_margin(self.img_size)
        self.primary_augmenter = primary_augmenter
        self.auxiliary_augmenter = auxiliary_augmenter
        self.seed = int(seed)
        self.epoch = 0
        # An unlabelled table (a challenge's benchmark part) is only predicted: its labels read -1.
        if labelled:
            self._labels = encode_labels(self.records, self.tasks)
        else:
            self._labels = torch.full((len(self.records), len(self.tasks)), -1, dtype=torch.int64)
        self.metadata_encoding = metadata_encoding
        self.metadata_report: EncodingReport | None = None
        if metadata_encoding is not None:
            values, present, report = metadata_encoding.encode([r.metadata for r in self.records])
            self._metadata, self._metadata_present, self.metadata_report = values, present, report
        self.cache = cache
        self._cache_rows: list[int] | None = None
        if cache is not None:
            if root is None:
                raise DataError("a cache needs the dataset root its paths are relative to")
            index = cache.row_index(Path(root))
            rows = [index.get(cache.key_of(Path(root), r)) for r in self.records]
            if all(row is not None for row in rows):
                self._cache_rows = rows  # type: ignore[assignment]
            else:
                self.cache = None  # prepared for another table: decode the files instead

    def __len__(self) -> int:
        return len(self.records)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def label_matrix(self) -> torch.Tensor:
        """int64 [N, T] class indices, without decoding any image."""
        return self._labels.clone()

    @property
    def uses_cache(self) -> bool:
        return self._cache_rows is not None

    def load_pixels(self, index: int, modality: str) -> np.ndarray | None:
        """uint8 [S', S', 3] of one modality (from the cache when fresh), ``None`` if it is missing."""
        record = self.records[index]
        path = record.primary_path if modality == "primary" else record.auxiliary_path
        if path is None:
            return None
        if self._cache_rows is not None:
            return np.array(self.cache.array(modality)[self._cache_rows[index]])
        try:
            return load_resized(path, self.load_size)
        except DataError as exc:
            raise DataError(f"{record.describe()}, {modality} image: {exc}") from None

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self.records):
            raise IndexError(f"index {index} out of range for a dataset of {len(self.records)} cases")
        primary = self.load_pixels(index, "primary")
        auxiliary = self.load_pixels(index, "auxiliary")
        primary_t = self.primary_augmenter(
            primary, seed=sample_seed(self.seed, self.epoch, index, PRIMARY_STREAM)
        )
        if auxiliary is None:
            auxiliary_t = torch.zeros_like(primary_t)
        else:
            seed = sample_seed(self.seed, self.epoch, index, AUXILIARY_STREAM)
            auxiliary_t = self.auxiliary_augmenter(auxiliary, seed=seed)
        item = {
            "primary": primary_t.contiguous(),
            "auxiliary": auxiliary_t.contiguous(),
            "auxiliary_present": torch.tensor(auxiliary is not None),
            "labels": self._labels[index].clone(),
            "index": index,
            "case_id": self.records[index].case_id,
        }
        if self.metadata_encoding is not None:
            item["metadata"] = self._metadata[index].clone()
            item["metadata_present"] = self._metadata_present[index].clone()
        return item

    def metadata_matrix(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """``(metadata float [N, D], metadata_present bool [N])`` when the dataset encodes metadata."""
        if self.metadata_encoding is None:
            return None
        return self._metadata.clone(), self._metadata_present.clone()
