"""The evaluation files of a run directory: metrics.json, predictions_<split>.csv, ROC and confusion PNGs.

Every file is written to a temporary name and renamed, so a killed run never leaves half a report.
Undefined metrics (NaN) are written as JSON ``null``. ``json_safe`` and ``write_json`` live in
:mod:`mmfuse.fileio`, the figure helpers in :mod:`mmfuse.plots`; they are importable here too.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from mmfuse.fileio import atomic_write_bytes, json_safe, write_json
from mmfuse.plots import save_figure, task_figure
from mmfuse.tasks import TaskSpec

__all__ = [
    "json_safe",
    "plot_confusion_matrices",
    "plot_roc_curves",
    "write_json",
    "write_predictions_csv",
]

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

    figure, axes = task_figure(tasks, 4, 3.6)
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
    return save_figure(figure, Path(path), title)


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

    figure, axes = task_figure(tasks, 4.1, 3.4)
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
    return save_figure(figure, Path(path), title)
