"""What training and evaluation both need to run a model: the device, autocast, and how batches reach it.

Neither :mod:`mmfuse.training` nor :mod:`mmfuse.evaluation` imports the other; both import this.
Names load on first use (PEP 562): reading a run config's data options does not import torch.
"""

from __future__ import annotations

from mmfuse._lazy import lazy_exports

_EXPORTS = {
    "dataset_options": "data",
    "evaluation_loader": "data",
    "metadata_inputs": "data",
    "autocast_context": "device",
    "parse_device": "device",
    "select_device": "device",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(globals(), _EXPORTS)
