"""Which device a run uses, and the mixed precision it runs in there."""

from __future__ import annotations

import contextlib
from typing import Protocol

import torch

from mmfuse.errors import UsageError


class _HasLocalRank(Protocol):
    """A torchrun context (:class:`mmfuse.training.distributed.DistContext`): this process's GPU index."""

    @property
    def local_rank(self) -> int: ...


def parse_device(name: str) -> torch.device:
    """The device ``name`` names, if this machine has it; :class:`UsageError` otherwise."""
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        device = None
    if device is None or device.type not in ("cpu", "cuda", "mps"):
        raise UsageError(f"device {name!r} is not one of 'auto', 'cpu', 'cuda', 'cuda:<index>' or 'mps'")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"device {name!r} needs CUDA, which is not available here; use 'auto' or 'cpu'")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise UsageError(f"device {name!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise UsageError(f"device {name!r} needs Apple MPS, which is not available here; use 'auto' or 'cpu'")
    return device


def select_device(name: str, context: _HasLocalRank | None = None) -> torch.device:
    """``auto``: this process's GPU under torchrun, the GPU alone, else the CPU."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", 0 if context is None else context.local_rank)
        return torch.device("cpu")
    return parse_device(name)


def autocast_context(device: torch.device, amp: str = "none"):
    """bf16 or fp16 autocast on CUDA; nothing elsewhere (CPU runs stay in float32, bit-reproducible)."""
    if device.type != "cuda" or amp == "none":
        return contextlib.nullcontext()
    return torch.autocast("cuda", dtype=torch.bfloat16 if amp == "bf16" else torch.float16)
