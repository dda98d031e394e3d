"""Side-by-side timing that survives a noisy machine, and the settings every section shares.

On a small shared CPU a single timing drifts by several per cent between runs, so a ratio of two
separately measured models is unreliable. :func:`interleaved` therefore times all candidates in one
process, in alternating blocks (A, B, ... then ..., B, A), after a warm-up, and keeps every block's
time so that the median (robust) and the minimum (least disturbed) can both be reported.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Settings:
    """How a section runs: device, numeric precision, memory layout and how much to repeat."""

    device: torch.device
    quick: bool = False

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"

    @property
    def amp_dtype(self) -> torch.dtype | None:
        """bf16 autocast on CUDA (what training uses there); plain fp32 on CPU."""
        return torch.bfloat16 if self.cuda else None

    @property
    def channels_last(self) -> bool:
        return self.cuda

    @property
    def precision(self) -> str:
        return "bf16 autocast, channels_last" if self.cuda else "fp32"

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def images(self, batch: int, size: int = 224, generator_seed: int = 0) -> torch.Tensor:
        """A random image batch on the device, in the layout the models run in."""
        generator = torch.Generator().manual_seed(generator_seed)
        x = torch.randn(batch, 3, size, size, generator=generator).to(self.device)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work, so that a wall-clock interval covers the kernels it launched."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def interleaved(
    candidates: Mapping[str, Callable[[], object]],
    *,
    device: torch.device,
    warmup: int,
    rounds: int,
    block: int = 1,
) -> dict[str, list[float]]:
    """Seconds per call of each candidate, one entry per block, measured in alternating order.

    Each round runs every candidate ``block`` times in a row; odd rounds reverse the order so that a
    slow drift of the machine (thermal, a neighbour's job) does not favour whoever runs first.
    """
    if rounds < 1 or block < 1:
        raise ValueError(f"rounds and block must be >= 1, got rounds={rounds}, block={block}")
    names = list(candidates)
    for name in names:
        for _ in range(warmup):
            candidates[name]()
    synchronize(device)
    seconds: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(rounds):
        for name in names if round_index % 2 == 0 else reversed(names):
            synchronize(device)
            start = time.perf_counter()
            for _ in range(block):
                candidates[name]()
            synchronize(device)
            seconds[name].append((time.perf_counter() - start) / block)
    return seconds


def summary_ms(seconds: list[float]) -> dict[str, float]:
    """Median and minimum of per-call times, in milliseconds."""
    return {
        "median_ms": round(statistics.median(seconds) * 1e3, 3),
        "min_ms": round(min(seconds) * 1e3, 3),
        "samples": len(seconds),
    }


@contextlib.contextmanager
def stopwatch() -> Iterator[dict[str, float]]:
    """``with stopwatch() as t: ...`` leaves the elapsed seconds in ``t["seconds"]``."""
    result: dict[str, float] = {}
    start = time.perf_counter()
    try:
        yield result
    finally:
        result["seconds"] = round(time.perf_counter() - start, 3)
