"""Peak memory allocated while a function runs, on CPU and on CUDA.

CUDA keeps a high-water mark (:func:`torch.cuda.max_memory_allocated`). On CPU, ``tracemalloc`` does
not see tensor storage (PyTorch allocates it outside Python's allocator), so the profiler's memory
records — every allocation and free, in order — are replayed to find the peak above the starting level.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile

from benchmarks.timing import synchronize


def peak_bytes(fn: Callable[[], object], device: torch.device) -> int:
    """Largest amount of memory ``fn`` holds at once beyond what was allocated before it started."""
    if device.type == "cuda":
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        start = torch.cuda.memory_allocated(device)
        fn()
        synchronize(device)
        return int(torch.cuda.max_memory_allocated(device) - start)
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as profiler:
        fn()
    records = sorted(
        (event.start_ns(), event.nbytes())
        for event in profiler.profiler.kineto_results.events()
        if event.name() == "[memory]" and event.device_type() == DeviceType.CPU
    )
    return _high_water(nbytes for _, nbytes in records)


def _high_water(deltas) -> int:
    level = peak = 0
    for delta in deltas:
        level += delta
        peak = max(peak, level)
    return int(peak)
