"""Figures of one panel per task, saved atomically as PNG.

matplotlib's object API needs no backend (no pyplot state), so plotting is safe in any process,
including a training run's workers and a server.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path

from mmfuse.fileio import atomic_write_bytes
from mmfuse.tasks import TaskSpec


def panel_grid(n: int) -> tuple[int, int]:
    """``(rows, columns)`` for ``n`` panels, four to a row."""
    cols = min(4, n)
    return math.ceil(n / cols), cols


def task_figure(tasks: Sequence[TaskSpec], panel_width: float, panel_height: float):
    """A figure with one panel per task, four to a row, and its axes in task order."""
    from matplotlib.figure import Figure

    rows, cols = panel_grid(len(tasks))
    figure = Figure(figsize=(panel_width * cols, panel_height * rows), layout="constrained")
    return figure, [figure.add_subplot(rows, cols, i + 1) for i in range(len(tasks))]


def save_figure(figure, path: str | Path, title: str = "") -> Path:
    """``figure`` as a 100 dpi PNG at ``path`` (written aside, then renamed), with ``title`` above it."""
    if title:
        figure.suptitle(title)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    path = Path(path)
    atomic_write_bytes(path, buffer.getvalue())
    return path
