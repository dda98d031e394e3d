"""The files of a run directory: metrics.json, predictions_<split>.csv, ROC and confusion PNGs, the epoch log.

Every file is written to a temporary name and renamed, so a killed run never leaves half a report.
Undefined metrics (NaN) are written as JSON ``null``.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from mmfuse.fileio import atomic_write_bytes
from mmfuse.tasks import TaskSpec

METRICS_FILE = "metrics.json"
LOG_FILE = "log.csv"


def json_safe(value):
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def write_json(path: str | Path, data: Mapping) -> Path:
    path = Path(path)
    atomic_write_bytes(path, (json.dumps(json_safe(data), indent=2, allow_nan=False) + "\n").encode())
    return path


def write_predictions_csv(
    path: str | Path,
    case_ids: Sequence[str],
    labels: torch.Tensor,
    probabilities: Mapping[str, torch.Tensor],
    tasks: Sequence[TaskSpec],
) -> Path:
    """One row per case: ``case_id``, then per task ``<TASK>_label`` and ``<TASK>_prob_<CLS>``."""
    header = ["case_id"]
    for t in tasks:
        header += [f"{t.name}_label"] + [f"{t.name}_prob_{c}" for c in t.classes]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    columns = {t.name: probabilities[t.name].tolist() for t in tasks}
    label_rows = labels.tolist()
    for row, case_id in enumerate(case_ids):
        cells: list = [case_id]
        for column, t in enumerate(tasks):
            cells.append(t.classes[label_rows[row][column]])
            cells += [f"{p:.6f}" for p in columns[t.name][row]]
        writer.writerow(cells)
    path = Path(path)
    atomic_write_bytes(path, buffer.getvalue().encode())
    return path


def write_epoch_log(path: str | Path, rows: Sequence[Mapping]) -> Path:
    """The whole epoch log, rewritten each epoch (a resumed run never repeats a killed epoch's row)."""
    buffer = io.StringIO()
    if rows:
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    path = Path(path)
    atomic_write_bytes(path, buffer.getvalue().encode())
    return path


def _grid(n: int) -> tuple[int, int]:
    cols = min(4, n)
    return math.ceil(n / cols), cols


def _task_figure(tasks: Sequence[TaskSpec], panel_width: float, panel_height: float):
    """A figure with one panel per task, four to a row, and its axes in task order.

    matplotlib's object API needs no backend (no pyplot state), so plotting is safe in any process.
    """
    from matplotlib.figure import Figure

    rows, cols = _grid(len(tasks))
    figure = Figure(figsize=(panel_width * cols, panel_height * rows), layout="constrained")
    return figure, [figure.add_subplot(rows, cols, i + 1) for i in range(len(tasks))]


def _save_figure(figure, path: Path, title: str = "") -> Path:
    if title:
        figure.suptitle(title)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    atomic_write_bytes(path, buffer.getvalue())
    return path


def plot_roc_curves(
    path: str | Path,
    probabilities: Mapping[str, torch.Tensor],
    labels: torch.Tensor,
    tasks: Sequence[TaskSpec],
    title: str = "",
) -> Path:
    """One panel per task, one one-vs-rest ROC curve per class (classes missing from the split are skipped)."""
    from torchmetrics.functional.classification import binary_roc

    from mmfuse.evaluation.metrics import class_aucs

    figure, axes = _task_figure(tasks, 4, 3.6)
    for i, (task, axis) in enumerate(zip(tasks, axes, strict=True)):
        probs, target = probabilities[task.name].float(), labels[:, i].long()
        aucs = class_aucs(probs, target)
        for c, name in enumerate(task.classes):
            if math.isnan(aucs[c]):
                continue
            fpr, tpr, _ = binary_roc(probs[:, c], (target == c).long())
            axis.plot(fpr.numpy(), tpr.numpy(), label=f"{name} (AUC {aucs[c]:.3f})")
        axis.plot([0, 1], [0, 1], linestyle=":", color="grey", linewidth=0.8)
        axis.set(title=task.name, xlabel="1 - specificity", ylabel="sensitivity", xlim=(0, 1), ylim=(0, 1.02))
        if axis.get_lines()[:-1]:
            axis.legend(loc="lower right", fontsize=7)
    return _save_figure(figure, Path(path), title)


def plot_confusion_matrices(
    path: str | Path,
    probabilities: Mapping[str, torch.Tensor],
    labels: torch.Tensor,
    tasks: Sequence[TaskSpec],
    title: str = "",
    *,
    normalize: bool = False,
) -> Path:
    """One panel per task: true class (rows) against the arg-max prediction (columns), with a colour bar.

    Counts by default. ``normalize`` divides each row by its class's cases, so the diagonal is each class's
    sensitivity and rare classes (MEL, say) are as readable as common ones; cells also give the count.
    """
    from torchmetrics.functional.classification import multiclass_confusion_matrix

    figure, axes = _task_figure(tasks, 4.1, 3.4)
    for i, (task, axis) in enumerate(zip(tasks, axes, strict=True)):
        counts = multiclass_confusion_matrix(
            probabilities[task.name].float(), labels[:, i].long(), num_classes=task.num_classes
        ).numpy()
        if normalize:
            totals = counts.sum(axis=1, keepdims=True)
            shown = counts / np.maximum(totals, 1)
            image = axis.imshow(shown, cmap="Blues", vmin=0.0, vmax=1.0)
        else:
            shown = counts
            image = axis.imshow(shown, cmap="Blues", vmin=0, vmax=max(int(counts.max()), 1))
        colorbar = figure.colorbar(image, ax=axis, fraction=0.046, pad=0.04)
        colorbar.set_label("share of the true class" if normalize else "cases", fontsize=7)
        colorbar.ax.tick_params(labelsize=7)
        high = 1.0 if normalize else max(int(counts.max()), 1)
        for r in range(task.num_classes):
            for c in range(task.num_classes):
                text = f"{shown[r, c]:.0%}\n({counts[r, c]})" if normalize else str(counts[r, c])
                axis.text(
                    c,
                    r,
                    text,
                    ha="center",
                    va="center",
                    fontsize=7 if normalize else 8,
                    color="white" if shown[r, c] > high / 2 else "black",
                )
        ticks = range(task.num_classes)
        axis.set_xticks(ticks, task.classes, fontsize=7)
        axis.set_yticks(ticks, task.classes, fontsize=7)
        axis.set(title=task.name, xlabel="predicted", ylabel="true")
    return _save_figure(figure, Path(path), title)
