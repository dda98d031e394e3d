"""Assemble the metrics of a split (every head plus the final Eq. 4 prediction) and print them."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch

from mmfuse.evaluation.bootstrap import BootstrapOptions, head_intervals, resample_counts
from mmfuse.evaluation.derm7pt import report_groups
from mmfuse.evaluation.inference import Predictions
from mmfuse.evaluation.metrics import head_metrics
from mmfuse.head_mixing import mix_heads
from mmfuse.tasks import TaskSpec


def final_probabilities(
    predictions: Predictions, head_weights: Mapping[str, float]
) -> dict[str, torch.Tensor]:
    """Eq. 4 with the model's head weights (the primary head alone where the auxiliary image is missing).

    Predictions whose ``combine`` is ``"logits"`` mix each view's logits instead (FusionM4Net's way).
    """
    if predictions.combine == "logits":
        from mmfuse.evaluation.inference import scaled_logits
        from mmfuse.evaluation.weight_search import mix

        return mix(scaled_logits(predictions), head_weights, predictions.auxiliary_present, "logits")
    return mix_heads(predictions.probabilities, head_weights, predictions.auxiliary_present)


def split_metrics(
    predictions: Predictions,
    tasks: Sequence[TaskSpec],
    head_weights: Mapping[str, float],
    *,
    bootstrap: BootstrapOptions | None = None,
) -> dict[str, dict]:
    """``{head: report}`` for each head present and ``final``; see :func:`head_metrics` for a report.

    With ``bootstrap`` each report also holds ``"ci"``: the options and the percentile intervals of
    ``avg_auc``, ``avg_acc``, the group averages, every task's accuracy and every class's AUC, all heads
    drawn from the same resamples of the cases.
    """
    groups = report_groups(tasks)
    probabilities = dict(predictions.probabilities)
    probabilities["final"] = final_probabilities(predictions, head_weights)
    heads = {h: head_metrics(p, predictions.labels, tasks, groups=groups) for h, p in probabilities.items()}
    if bootstrap is not None:
        counts = resample_counts(len(predictions.case_ids), bootstrap.resamples, bootstrap.seed)
        for head, p in probabilities.items():
            intervals = head_intervals(
                p, predictions.labels, tasks, counts, level=bootstrap.level, groups=groups
            )
            heads[head]["ci"] = {**bootstrap.to_dict(), **intervals}
    return heads


def _pct(value: float) -> str:
    return "  n/a" if value is None or math.isnan(value) else f"{100 * value:5.1f}"


def _with_interval(value: float, interval: Sequence[float | None] | None) -> str:
    """``78.3 [74.1, 82.0]`` (percent); the bare value when no interval was computed."""
    if not interval or interval[0] is None or value is None or math.isnan(value):
        return _pct(value)
    return f"{_pct(value)} [{100 * interval[0]:.1f}, {100 * interval[1]:.1f}]"


def format_table(metrics: Mapping[str, Mapping], tasks: Sequence[TaskSpec]) -> str:
    """One row per head: AVG AUC, AVG ACC, the melanoma-set AUC when present, and each task's accuracy (%),
    under a line that names the task columns as accuracies.

    Reports that carry bootstrap intervals show them after the averages and the melanoma AUC.
    """
    names = [t.name for t in tasks]
    has_mel = any("mel" in m for m in metrics.values())
    has_ci = any("ci" in m for m in metrics.values())
    header = ["head", "AVG AUC", "AVG ACC"] + (["MEL AUC"] if has_mel else []) + names
    widths = [max(9, len(h)) for h in header]
    if has_ci:
        widths[1 : 4 if has_mel else 3] = [20] * (3 if has_mel else 2)
    lines = [
        "  ".join(
            h.rjust(w) if i else h.ljust(w) for i, (h, w) in enumerate(zip(header, widths, strict=True))
        )
    ]
    if names:  # the task columns are accuracies: say so over them
        first = len(header) - len(names)
        before = sum(widths[:first]) + 2 * first
        span = sum(widths[first:]) + 2 * (len(names) - 1)
        lines.insert(0, " " * before + " accuracy (%) per task ".center(span, "-"))
    for head, report in metrics.items():
        ci = report.get("ci", {})
        cells = [
            head,
            _with_interval(report["avg_auc"], ci.get("avg_auc")),
            _with_interval(report["avg_acc"], ci.get("avg_acc")),
        ]
        if has_mel:
            mel = (
                _with_interval(report["mel"]["auc"], ci.get("mel", {}).get("auc"))
                if "mel" in report
                else "  n/a"
            )
            cells.append(mel)
        cells += [_pct(report["tasks"][n]["acc"]) for n in names]
        lines.append(
            "  ".join(
                c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
            )
        )
    return "\n".join(lines)


def format_class_table(report: Mapping, tasks: Sequence[TaskSpec], head: str = "final") -> str:
    """One head's per-class AUC (with its interval when computed), then its melanoma-set figures (%)."""
    ci = report.get("ci", {})
    level = f" ({100 * ci['level']:.0f} % CI, {ci['resamples']} resamples)" if ci else ""
    lines = [f"{head}: per-class AUC{level}"]
    tw = max(5, *(len(t.name) for t in tasks))
    cw = max(5, *(len(c) for t in tasks for c in t.classes))
    for task in tasks:
        entry, task_ci = report["tasks"][task.name], ci.get("tasks", {}).get(task.name, {})
        for name in task.classes:
            interval = task_ci.get("classes", {}).get(name, {}).get("auc")
            lines.append(
                f"  {task.name:>{tw}} {name:<{cw}} {_with_interval(entry['classes'][name]['auc'], interval)}"
            )
    for group in ("mel",):
        if group in report:
            lines.append(f"{head}: melanoma-set averages (Table 4){level}")
            for metric, value in report[group].items():
                interval = ci.get(group, {}).get(metric)
                lines.append(f"  {metric:<11} {_with_interval(value, interval)}")
    return "\n".join(lines)
