"""What training and evaluation both need to run a model: the device, autocast, and how batches reach it.

Neither :mod:`mmfuse.training` nor :mod:`mmfuse.evaluation` imports the other; both import this.
Names load on first use (PEP 562): reading a run config's data options does not import torch.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "dataset_options": "data",
    "evaluation_loader": "data",
    "metadata_inputs": "data",
    "autocast_context": "device",
    "parse_device": "device",
    "select_device": "device",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
