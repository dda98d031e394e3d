"""Progress of a long command: a bar on a terminal, one line per step in a log, each with an ETA.

Training draws a tqdm bar on a terminal and prints one line per epoch otherwise (a CI log or ``nohup``
output has no use for carriage returns); :class:`Steps` gives every other long command the same
behaviour::

    with Steps(len(jobs), "robustness") as steps:
        for job in jobs:
            run(job)
            steps.step(job.name)  # "robustness 3/51  jpeg s2  12 s elapsed, 3 min 24 s left"
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

from tqdm.auto import tqdm


def format_duration(seconds: float) -> str:
    """``"42 s"``, ``"7 min 05 s"``, ``"3 h 12 min"``: a remaining time, readable at a glance."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


class Steps:
    """``total`` steps of a command called ``desc``.

    ``progress``: ``None`` (default) draws a bar when ``file`` is a terminal and prints a line per step
    otherwise; ``True`` always draws the bar; ``"lines"`` always prints lines (for a command that
    prints other lines between its steps); ``False`` shows nothing. The ETA assumes the steps left
    take as long as the mean of those done.
    """

    def __init__(
        self,
        total: int,
        desc: str,
        *,
        progress: bool | str | None = None,
        file: TextIO | None = None,
        unit: str = "step",
    ) -> None:
        self.total = int(total)
        self.desc = desc
        self.file = file if file is not None else sys.stderr
        self.done = 0
        self.started = time.perf_counter()
        is_tty = bool(getattr(self.file, "isatty", lambda: False)())
        if progress == "lines" or progress is False:
            self.mode = "lines" if progress else "off"
        else:
            self.mode = "bar" if progress or is_tty else "lines"
        self._bar = (
            tqdm(total=self.total, desc=desc, unit=unit, file=self.file, dynamic_ncols=True)
            if self.mode == "bar"
            else None
        )

    def step(self, what: str = "") -> None:
        """One step finished; ``what`` names it (shown beside the bar, or in the line)."""
        self.done += 1
        if self._bar is not None:
            self._bar.set_postfix_str(what, refresh=False)
            self._bar.update(1)
        elif self.mode == "lines":
            print(self.line(what), file=self.file, flush=True)

    def line(self, what: str = "") -> str:
        """``desc done/total  what  elapsed, ETA`` for the steps done so far."""
        elapsed = time.perf_counter() - self.started
        left = elapsed / self.done * max(self.total - self.done, 0) if self.done else float("nan")
        eta = f"{format_duration(left)} left" if self.done else "estimating"
        label = f"  {what}" if what else ""
        return f"{self.desc} {self.done}/{self.total}{label}  {format_duration(elapsed)} elapsed, {eta}"

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> Steps:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
