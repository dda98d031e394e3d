"""Where training batches come from: a DataLoader over the dataset, or a uint8 cache on the device.

Both sources give the same thing per step — a dict with ``primary``, ``auxiliary`` (float, normalised,
on the training device), ``auxiliary_present`` and ``labels`` — and both make each epoch a pure function
of ``(seed, epoch)``: the order comes from :class:`~torch.utils.data.DistributedSampler` (or, with ``train.sampler:
balanced``, :class:`~mmfuse.training.imbalance.ClassBalancedSampler`) seeded with the run seed and the epoch, the augmentation from the epoch. That is what lets a resumed run replay an epoch
exactly.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Protocol

import torch
from torch import nn
from torch.utils.data import DataLoader

from mmfuse.errors import DataError, UsageError
from mmfuse.runtime.data import dataset_options
from mmfuse.runtime.data import evaluation_loader as evaluation_loader  # importable here as before
from mmfuse.training.distributed import DistContext
from mmfuse.training.imbalance import training_sampler

BATCH_KEYS = ("primary", "auxiliary", "auxiliary_present", "labels")
OPTIONAL_KEYS = ("metadata", "metadata_present")  # present when the dataset encodes metadata


class BatchSource(Protocol):
    """An epoch's training batches, already on the training device."""

    def __len__(self) -> int: ...

    def epoch(self, epoch: int) -> Iterator[dict[str, torch.Tensor]]: ...


def per_rank_batch_size(batch_size: int, context: DistContext) -> int:
    """The configured batch size is global, so a config means the same recipe alone or under torchrun."""
    if batch_size % context.world_size:
        raise UsageError(
            f"train.batch_size {batch_size} is not divisible by the {context.world_size} torchrun processes"
        )
    return batch_size // context.world_size


def _drop_last(samples: int, batch_size: int) -> bool:
    # A final batch of one sample breaks batch-norm in training mode; any other remainder is kept.
    return samples % batch_size == 1


def to_device(batch: dict, device: torch.device, channels_last: bool = False) -> dict[str, torch.Tensor]:
    out = {}
    for key in (*BATCH_KEYS, *(k for k in OPTIONAL_KEYS if k in batch)):
        value = batch[key].to(device, non_blocking=True)
        if channels_last and value.ndim == 4:
            value = value.contiguous(memory_format=torch.channels_last)
        out[key] = value
    return out


class LoaderBatches:
    """Decode and augment on the CPU in ``num_workers`` processes (the dataset's own pipeline)."""

    def __init__(
        self,
        dataset,
        *,
        batch_size: int,
        seed: int,
        context: DistContext,
        device: torch.device,
        num_workers: int = 0,
        channels_last: bool = False,
        sampler: str = "shuffle",
    ) -> None:
        self.dataset = dataset
        self.sampler = training_sampler(
            dataset, kind=sampler, seed=seed, num_replicas=context.world_size, rank=context.rank
        )
        self.device = device
        self.channels_last = channels_last
        self.loader = DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=self.sampler,
            num_workers=num_workers,
            drop_last=_drop_last(len(self.sampler), batch_size),
            pin_memory=device.type == "cuda",
            persistent_workers=False,
        )

    def __len__(self) -> int:
        return len(self.loader)

    def epoch(self, epoch: int) -> Iterator[dict[str, torch.Tensor]]:
        self.dataset.set_epoch(epoch)
        self.sampler.set_epoch(epoch)
        for batch in self.loader:
            yield to_device(batch, self.device, self.channels_last)


class DeviceCacheBatches:
    """Every training image decoded once into uint8 tensors on the device; batches augmented there.

    This keeps a GPU fed without CPU workers: the per-step cost is one gather and one ``grid_sample``
    (:class:`mmfuse.data.augment.BatchAugmenter`). Pixels come from the prepared cache when it is fresh
    (``mmfuse data prepare``), else from the image files, once. The random choices of step ``s`` of
    epoch ``e`` come from a generator seeded with ``(seed, e, s)``, so epochs replay exactly on resume.
    """

    def __init__(
        self,
        dataset,
        *,
        batch_size: int,
        seed: int,
        context: DistContext,
        device: torch.device,
        mean: Sequence[float],
        std: Sequence[float],
        augment: dict | None = None,
        channels_last: bool = False,
        num_threads: int = 8,
        sampler: str = "shuffle",
    ) -> None:
        from concurrent.futures import ThreadPoolExecutor

        from mmfuse.data.augment import MODALITIES, BatchAugmenter

        self.dataset = dataset
        self.seed = int(seed)
        self.device = device
        self.batch_size = batch_size
        self.channels_last = channels_last
        self.sampler = training_sampler(
            dataset, kind=sampler, seed=seed, num_replicas=context.world_size, rank=context.rank
        )
        self.drop_last = _drop_last(len(self.sampler), batch_size)
        options = dict(augment or {})
        per_modality = {m: dict(options.pop(m, None) or {}) for m in MODALITIES}
        size = dataset.img_size
        self.augmenters = {
            m: BatchAugmenter(
                train=True,
                img_size=size,
                mean=mean,
                std=std,
                **{**options, **per_modality[m]},
            )
            for m in MODALITIES
        }

        def pixels(modality: str) -> torch.Tensor:
            with ThreadPoolExecutor(max_workers=num_threads) as pool:
                images = list(pool.map(lambda i: dataset.load_pixels(i, modality), range(len(dataset))))
            side = dataset.load_size
            blank = torch.zeros((side, side, 3), dtype=torch.uint8)
            stacked = torch.stack([blank if img is None else torch.from_numpy(img) for img in images])
            return stacked.to(device)

        self.primary = pixels("primary")
        self.auxiliary = pixels("auxiliary")
        self.present = torch.tensor(
            [r.auxiliary_path is not None for r in dataset.records], dtype=torch.bool, device=device
        )
        self.labels = dataset.label_matrix().to(device)
        metadata = dataset.metadata_matrix() if hasattr(dataset, "metadata_matrix") else None
        self.metadata = None if metadata is None else (metadata[0].to(device), metadata[1].to(device))

    def __len__(self) -> int:
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def epoch(self, epoch: int) -> Iterator[dict[str, torch.Tensor]]:
        from mmfuse.data.augment import sample_seed

        self.sampler.set_epoch(epoch)
        order = torch.tensor(list(self.sampler), dtype=torch.long, device=self.device)
        for step in range(len(self)):
            index = order[step * self.batch_size : (step + 1) * self.batch_size]
            generator = torch.Generator(device=self.device)
            generator.manual_seed(sample_seed(self.seed, epoch, step, 2))
            present = self.present[index]
            primary = self.augmenters["primary"](self.primary[index], generator)
            auxiliary = self.augmenters["auxiliary"](self.auxiliary[index], generator)
            auxiliary = auxiliary * present.view(-1, 1, 1, 1)  # missing images stay all zeros
            batch = {
                "primary": primary,
                "auxiliary": auxiliary,
                "auxiliary_present": present,
                "labels": self.labels[index],
            }
            if self.metadata is not None:
                batch["metadata"], batch["metadata_present"] = (
                    self.metadata[0][index],
                    self.metadata[1][index],
                )
            yield to_device(batch, self.device, self.channels_last)


def training_batches(
    config: Mapping, model: nn.Module, *, context: DistContext, device: torch.device, channels_last: bool
) -> BatchSource:
    """The run's training split as batches for ``model`` (its preprocessing, metadata encoding and tasks),
    through a DataLoader or, with ``data.device_cache``, from a cache on ``device``."""
    from mmfuse.data import build_dataset

    data, seed = config["data"], int(config["train"]["seed"])
    options, prep = dataset_options(config), model.preprocessing
    dataset = build_dataset(
        options,
        data["train_split"],
        train=True,
        img_size=prep["img_size"],
        mean=prep["mean"],
        std=prep["std"],
        seed=seed,
        metadata_encoding=model.metadata_encoding,
        tasks=model.tasks,
    )
    if len(dataset) == 0:
        raise DataError(f"the training split {data['train_split']!r} of {data['root']} is empty")
    common = dict(
        batch_size=per_rank_batch_size(int(config["train"]["batch_size"]), context),
        seed=seed,
        context=context,
        device=device,
        sampler=config["train"].get("sampler", "shuffle"),
        channels_last=channels_last,
    )
    if data["device_cache"]:
        augment = options.get("augment")
        return DeviceCacheBatches(dataset, mean=prep["mean"], std=prep["std"], augment=augment, **common)
    return LoaderBatches(dataset, num_workers=int(data["num_workers"]), **common)
