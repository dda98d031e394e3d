"""How a run feeds a model: the dataset options of a run config, the in-order loader, the metadata inputs.

Training builds its datasets and batches from these, evaluation its test-time ones, so both read a run
config and a batch the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from mmfuse.errors import UsageError

if TYPE_CHECKING:
    import torch
    from torch.utils.data import DataLoader

# Keys of a run config's data section that the trainer reads itself; the dataset builder never sees them.
RUN_DATA_KEYS = frozenset({"train_split", "val_split", "num_workers", "device_cache"})


def dataset_options(config: Mapping) -> dict:
    """The data section without the trainer's own keys: what the dataset builder receives."""
    return {k: v for k, v in config["data"].items() if k not in RUN_DATA_KEYS}


def evaluation_loader(dataset, batch_size: int, num_workers: int = 0) -> DataLoader:
    """In order, no augmentation beyond the dataset's own evaluation transform."""
    from torch.utils.data import DataLoader

    return DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)


def metadata_inputs(model: torch.nn.Module, batch: dict, device: torch.device | str) -> dict:
    """The ``metadata`` / ``metadata_present`` keyword inputs of ``batch`` for a model that takes them."""
    if not getattr(model, "uses_metadata", False):
        return {}
    if "metadata" not in batch:
        raise UsageError(
            "this model takes patient metadata but the batches carry none: build the dataset with "
            "the model's metadata_encoding (data.metadata in a run config)"
        )
    return {
        "metadata": batch["metadata"].to(device),
        "metadata_present": batch["metadata_present"].to(device).bool(),
    }
