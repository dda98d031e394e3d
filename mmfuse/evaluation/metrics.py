"""The paper's metrics as pure functions of probabilities and labels (torchmetrics underneath).

Per task: accuracy of the arg-max class. Per class, one-vs-rest: AUC of the class probability,
precision, sensitivity (recall) and specificity of the arg-max prediction. Averages as the paper's tables:
``avg_acc`` is the mean of the task accuracies (Table 3); ``avg_auc`` the mean AUC over every class except
the "absent" ones (17 classes on Derm7pt, Tables 2 and 8); named groups of classes (Table 4's melanoma
set, see :mod:`mmfuse.evaluation.derm7pt`) get the mean of each per-class metric.

Undefined values follow scikit-learn's ``zero_division=0`` convention for precision, sensitivity and
specificity; an AUC is undefined (NaN, ``null`` in JSON) when the split holds no positive or no negative
case of the class, and averages skip it. Each task also carries the ISIC challenges' metrics
(:mod:`mmfuse.evaluation.isic`): ``balanced_accuracy``, the ``macro_*`` averages and ``isic_classes``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence

import torch
from torchmetrics.functional.classification import (
    multiclass_accuracy,
    multiclass_auroc,
    multiclass_precision,
    multiclass_recall,
    multiclass_specificity,
)

from mmfuse.errors import UsageError
from mmfuse.evaluation.isic import isic_metrics
from mmfuse.tasks import TaskSpec

ABSENT_CLASS = "ABS"
CLASS_METRICS = ("auc", "precision", "sensitivity", "specificity")


def accuracy(probabilities: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of cases whose arg-max class is the label."""
    num_classes = probabilities.shape[1]
    return float(multiclass_accuracy(probabilities, labels, num_classes=num_classes, average="micro"))


def class_aucs(probabilities: torch.Tensor, labels: torch.Tensor) -> list[float]:
    """One-vs-rest AUC per class; NaN for a class with no positive or no negative case."""
    num_classes = probabilities.shape[1]
    with warnings.catch_warnings():
        warnings.simplefilter(
            "ignore", UserWarning
        )  # torchmetrics warns on degenerate classes; we mark them NaN
        values = multiclass_auroc(probabilities, labels, num_classes=num_classes, average=None).tolist()
    positives = torch.bincount(labels, minlength=num_classes).tolist()
    total = labels.numel()
    return [v if 0 < n < total else math.nan for v, n in zip(values, positives, strict=True)]


def task_metrics(probabilities: torch.Tensor, labels: torch.Tensor, task: TaskSpec) -> dict:
    """``{"acc", "classes": {class: {"auc", "precision", "sensitivity", "specificity"}}}`` for one task."""
    probabilities = probabilities.detach().float().cpu()
    labels = labels.detach().long().cpu()
    if probabilities.shape != (labels.numel(), task.num_classes):
        raise UsageError(
            f"task {task.name!r}: probabilities of shape {tuple(probabilities.shape)} do not match "
            f"{labels.numel()} labels and {task.num_classes} classes"
        )
    c = task.num_classes
    per_metric = {
        "auc": class_aucs(probabilities, labels),
        "precision": multiclass_precision(probabilities, labels, num_classes=c, average=None).tolist(),
        "sensitivity": multiclass_recall(probabilities, labels, num_classes=c, average=None).tolist(),
        "specificity": multiclass_specificity(probabilities, labels, num_classes=c, average=None).tolist(),
    }
    classes = {name: {m: per_metric[m][i] for m in CLASS_METRICS} for i, name in enumerate(task.classes)}
    return {
        "acc": accuracy(probabilities, labels),
        "classes": classes,
        **isic_metrics(probabilities.double().numpy(), labels.numpy(), task.classes),
    }


def _nanmean(values: Sequence[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return sum(finite) / len(finite) if finite else math.nan


def scored_classes(tasks: Sequence[TaskSpec], absent_class: str = ABSENT_CLASS) -> list[tuple[str, str]]:
    """The ``(task, class)`` pairs that ``avg_auc`` averages: every class but the absent ones."""
    return [(t.name, c) for t in tasks for c in t.classes if c != absent_class]


def head_metrics(
    probabilities: Mapping[str, torch.Tensor],
    labels: torch.Tensor,
    tasks: Sequence[TaskSpec],
    *,
    groups: Mapping[str, Sequence[tuple[str, str]]] | None = None,
    absent_class: str = ABSENT_CLASS,
) -> dict:
    """The full report of one head (or of the final prediction).

    ``probabilities[task]`` is ``[N, C]``; ``labels`` is ``[N, T]`` in task order. ``groups`` maps a name
    (``"mel"``) to ``(task, class)`` pairs whose per-class metrics are averaged under that name.
    """
    per_task = {t.name: task_metrics(probabilities[t.name], labels[:, i], t) for i, t in enumerate(tasks)}
    report: dict = {
        "avg_auc": _nanmean(
            [per_task[t]["classes"][c]["auc"] for t, c in scored_classes(tasks, absent_class)]
        ),
        "avg_acc": sum(per_task[t.name]["acc"] for t in tasks) / len(tasks),
    }
    for name, members in (groups or {}).items():
        report[name] = {
            m: _nanmean([per_task[t]["classes"][c][m] for t, c in members]) for m in CLASS_METRICS
        }
    report["tasks"] = per_task
    return report


def objective(
    probabilities: Mapping[str, torch.Tensor],
    labels: torch.Tensor,
    tasks: Sequence[TaskSpec],
    name: str,
    absent_class: str = ABSENT_CLASS,
) -> float:
    """``avg_auc`` or ``avg_acc`` alone — the same numbers :func:`head_metrics` reports, computed faster."""
    if name == "avg_acc":
        return sum(accuracy(probabilities[t.name], labels[:, i]) for i, t in enumerate(tasks)) / len(tasks)
    if name == "avg_auc":
        values = []
        for i, t in enumerate(tasks):
            aucs = class_aucs(probabilities[t.name].float(), labels[:, i].long())
            values += [a for c, a in zip(t.classes, aucs, strict=True) if c != absent_class]
        return _nanmean(values)
    raise UsageError(f"unknown objective {name!r}; use 'avg_auc' or 'avg_acc'")
