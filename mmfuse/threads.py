"""How many CPU threads torch should use: the cores that are free, not all the cores there are.

PyTorch starts one OpenMP thread per core. On a machine where other jobs already keep cores busy, every
parallel region then waits for a thread the scheduler has parked behind someone else's process: a
40-epoch demo that takes a minute and a half with one thread took ten on a loaded 2-core machine with
two. So the default (``"auto"``) counts the cores this process may use, subtracts the load average
(the runnable processes of others) and the DataLoader workers (each keeps a core busy decoding), and
keeps at least one thread. ``OMP_NUM_THREADS`` set by the user, or an explicit number, wins.

The load average changes while a run starts (reading the dataset, building the model), so a run decides
once, at its start (:func:`choose_threads`), and hands that :class:`ThreadChoice` down: the command line
prints it, the trainer applies it and stores it in each checkpoint.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from mmfuse.errors import UsageError

AUTO = "auto"


@dataclass(frozen=True)
class ThreadChoice:
    """The number chosen and the figures it was chosen from (printed by the CLI, logged by the trainer).

    ``automatic``: chosen from the free cores (``"auto"``), not set by the user or ``OMP_NUM_THREADS``;
    only such a choice gives way to the count a resumed run was trained with.
    """

    threads: int
    reason: str
    automatic: bool = False

    def apply(self) -> ThreadChoice:
        """Set torch's intra-op pool to this many threads; returns ``self``."""
        import torch

        if torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)
        return self


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity, which containers and ``taskset`` narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def load_average() -> float:
    """The 1-minute load average; 0 where the platform has none."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return 0.0


def auto_threads(num_workers: int = 0, *, cores: int | None = None, load: float | None = None) -> int:
    """Free cores, less one per DataLoader worker, at least 1 (a pure function when both figures are given).

    The load average is rounded to the nearest whole process: 0.4 of a busy core still leaves it to us.
    """
    cores = usable_cores() if cores is None else int(cores)
    load = load_average() if load is None else float(load)
    free = cores - math.floor(max(load, 0.0) + 0.5)
    return max(1, min(cores, free - max(int(num_workers), 0)))


def choose_threads(setting: int | str | None = AUTO, *, num_workers: int = 0) -> ThreadChoice:
    """Resolve ``train.threads`` / ``--threads``: a positive integer, or ``"auto"`` (also ``None``)."""
    if setting is not None and setting != AUTO:
        if isinstance(setting, bool) or not isinstance(setting, int) or setting < 1:
            raise UsageError(f"threads must be a positive integer or 'auto', got {setting!r}")
        return ThreadChoice(setting, "as configured")
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        return ThreadChoice(int(env), "OMP_NUM_THREADS")
    cores, load = usable_cores(), load_average()
    threads = auto_threads(num_workers, cores=cores, load=load)
    workers = f", {num_workers} DataLoader workers" if num_workers else ""
    return ThreadChoice(threads, f"auto: {cores} cores, load average {load:.2f}{workers}", automatic=True)


def set_threads(setting: int | str | None = AUTO, *, num_workers: int = 0) -> ThreadChoice:
    """Apply :func:`choose_threads` to torch's intra-op pool and return the choice."""
    return choose_threads(setting, num_workers=num_workers).apply()


def parse_threads(text: str) -> int | str:
    """``argparse`` type of ``--threads``: ``auto`` or a positive integer."""
    if text == AUTO:
        return AUTO
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        import argparse

        raise argparse.ArgumentTypeError(f"expected a positive integer or 'auto', got {text!r}")
    return value
