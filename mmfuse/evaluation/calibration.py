"""Calibration: expected calibration error, reliability diagrams, temperature scaling (Guo et al., ICML 2017).

A head is calibrated when, among the cases it gives a top-class confidence of 0.8, 80 % are right. Deep
classifiers trained to low loss tend to be over-confident; dividing a head's logits by one temperature
``T > 1`` fixes most of it without changing any arg-max (so accuracy is untouched). ``T`` is fitted per head
and per task on the validation split by minimising the negative log-likelihood of the probabilities the
evaluation actually uses (the softmax of ``z / T`` averaged over the TTA views). Fusion and auxiliary heads
are fitted on the cases that have an auxiliary image only.

ECE is the top-label expected calibration error over 15 equal-width confidence bins (torchmetrics'
``multiclass_calibration_error``, L1 norm).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from mmfuse.errors import UsageError
from mmfuse.plots import save_figure, task_figure
from mmfuse.tasks import TaskSpec

ECE_BINS = 15
# log T is searched in [log 0.05, log 100]: wider than any temperature a trained network needs.
_LOG_T_RANGE = (math.log(0.05), math.log(100.0))


def expected_calibration_error(
    probabilities: torch.Tensor, labels: torch.Tensor, bins: int = ECE_BINS
) -> float:
    """Top-label ECE of ``[N, C]`` probabilities against ``[N]`` class indices."""
    from torchmetrics.functional.classification import multiclass_calibration_error

    probabilities = probabilities.detach().float().cpu()
    return float(
        multiclass_calibration_error(
            probabilities,
            labels.detach().long().cpu(),
            num_classes=probabilities.shape[1],
            n_bins=bins,
            norm="l1",
        )
    )


def reliability_bins(probabilities: torch.Tensor, labels: torch.Tensor, bins: int = ECE_BINS) -> dict:
    """Per equal-width confidence bin: mean confidence, accuracy and case count (empty bins: NaN, 0)."""
    probabilities = probabilities.detach().float().cpu()
    confidence, predicted = probabilities.max(dim=1)
    correct = (predicted == labels.detach().long().cpu()).float()
    index = torch.clamp((confidence * bins).ceil().long() - 1, 0, bins - 1)
    counts = torch.bincount(index, minlength=bins).float()
    total_confidence = torch.zeros(bins).index_add_(0, index, confidence)
    total_correct = torch.zeros(bins).index_add_(0, index, correct)
    safe = counts.clamp(min=1)
    nan = torch.full((bins,), math.nan)
    return {
        "edges": torch.linspace(0, 1, bins + 1).tolist(),
        "confidence": torch.where(counts > 0, total_confidence / safe, nan).tolist(),
        "accuracy": torch.where(counts > 0, total_correct / safe, nan).tolist(),
        "count": counts.long().tolist(),
    }


def _nll(logits: torch.Tensor, labels: torch.Tensor, log_t: float) -> float:
    """NLL of the view-averaged softmax of ``logits / T``; ``logits`` is ``[V, N, C]``."""
    log_p = torch.log_softmax(logits / math.exp(log_t), dim=-1)  # [V, N, C]
    picked = log_p.gather(2, labels.view(1, -1, 1).expand(log_p.shape[0], -1, 1)).squeeze(2)
    return float(-(torch.logsumexp(picked, dim=0) - math.log(log_p.shape[0])).mean())


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor, *, iterations: int = 80) -> float:
    """The temperature minimising the validation NLL (golden-section search on log T).

    ``logits`` is ``[N, C]`` or ``[V, N, C]`` (TTA views whose softmax outputs are averaged). The NLL of
    temperature scaling is unimodal in log T, so the search converges to its minimum; 80 steps narrow the
    bracket to below 1e-15 of its width. When the minimum lies at the edge of [0.05, 100] — a validation split
    that the head separates perfectly, where the NLL only falls as T -> 0 — the head is left unscaled (T = 1)
    rather than made certain of everything.
    """
    logits = logits.detach().double().cpu()  # the NLL is flat near its minimum: float32 noise would move it
    if logits.dim() == 2:
        logits = logits.unsqueeze(0)
    labels = labels.detach().long().cpu()
    if logits.shape[1] == 0:
        raise UsageError("cannot fit a temperature on zero cases")
    ratio = (math.sqrt(5) - 1) / 2
    low, high = _LOG_T_RANGE
    a, b = high - ratio * (high - low), low + ratio * (high - low)
    fa, fb = _nll(logits, labels, a), _nll(logits, labels, b)
    for _ in range(iterations):
        if fa <= fb:
            high, b, fb = b, a, fa
            a = high - ratio * (high - low)
            fa = _nll(logits, labels, a)
        else:
            low, a, fa = a, b, fb
            b = low + ratio * (high - low)
            fb = _nll(logits, labels, b)
    log_t = (low + high) / 2
    if min(log_t - _LOG_T_RANGE[0], _LOG_T_RANGE[1] - log_t) < 1e-3:
        # No interior minimum: the NLL keeps falling towards T -> 0 (the cases are separated perfectly) or
        # T -> infinity (no information). Either limit is a degenerate model; leave the head unscaled.
        return 1.0
    return math.exp(log_t)


def fit_temperatures(
    logits: Mapping[str, Mapping[str, torch.Tensor]],
    labels: torch.Tensor,
    tasks: Sequence[TaskSpec],
    auxiliary_present: torch.Tensor | None = None,
) -> dict[str, dict[str, float]]:
    """``{head: {task: T}}`` from per-view logits ``[V, N, C]`` of the validation split.

    Heads other than ``primary`` see only the cases with an auxiliary image (the others are answered by
    the primary head); a head with no such case keeps T = 1.
    """
    temperatures: dict[str, dict[str, float]] = {}
    for head, per_task in logits.items():
        rows = torch.ones(labels.shape[0], dtype=torch.bool)
        if head != "primary" and auxiliary_present is not None:
            rows = auxiliary_present.bool().cpu()
        for i, task in enumerate(tasks):
            if task.name not in per_task:
                continue
            if not rows.any():
                temperatures.setdefault(head, {})[task.name] = 1.0
                continue
            z = per_task[task.name]
            z = z[:, rows] if z.dim() == 3 else z[rows]
            temperatures.setdefault(head, {})[task.name] = round(fit_temperature(z, labels[rows, i]), 6)
    return temperatures


def calibration_report(
    before: Mapping[str, torch.Tensor],
    after: Mapping[str, torch.Tensor],
    labels: torch.Tensor,
    tasks: Sequence[TaskSpec],
    bins: int = ECE_BINS,
) -> dict:
    """ECE per task and its mean, before and after temperature scaling, plus both reliability curves."""
    report: dict = {"bins": bins}
    for name, probabilities in (("before", before), ("after", after)):
        per_task = {
            t.name: expected_calibration_error(probabilities[t.name], labels[:, i], bins)
            for i, t in enumerate(tasks)
        }
        report[name] = {
            "ece": per_task,
            "mean_ece": sum(per_task.values()) / len(per_task),
            "reliability": {
                t.name: reliability_bins(probabilities[t.name], labels[:, i], bins)
                for i, t in enumerate(tasks)
            },
        }
    return report


def plot_reliability(path: str | Path, report: Mapping, tasks: Sequence[TaskSpec], title: str = "") -> Path:
    """One panel per task: accuracy against confidence per bin, before (grey) and after (blue) scaling.

    Marker areas are proportional to the bins' case counts, so a wild point from three cases reads as such.
    """
    figure, axes = task_figure(tasks, 3.4, 3.2)
    for task, axis in zip(tasks, axes, strict=True):
        for name, style in (
            ("before", {"color": "grey", "marker": "o", "linestyle": "--"}),
            ("after", {"color": "tab:blue", "marker": "s", "linestyle": "-"}),
        ):
            curve = report[name]["reliability"][task.name]
            points = [
                (c, a, n)
                for c, a, n in zip(curve["confidence"], curve["accuracy"], curve["count"], strict=True)
                if n
            ]
            if points:
                xs, ys, ns = zip(*points, strict=True)
                label = f"{name}: ECE {100 * report[name]['ece'][task.name]:.1f} %"
                axis.plot(
                    xs, ys, linewidth=1, label=label, color=style["color"], linestyle=style["linestyle"]
                )
                # marker area grows with the bin's share of cases: sparse bins are visibly sparse
                total = sum(ns)
                axis.scatter(
                    xs, ys, s=[4 + 120 * n / total for n in ns], color=style["color"], marker=style["marker"]
                )
        axis.plot([0, 1], [0, 1], linestyle=":", color="black", linewidth=0.8)
        axis.set(title=task.name, xlabel="confidence", ylabel="accuracy", xlim=(0, 1), ylim=(0, 1.02))
        axis.legend(loc="upper left", fontsize=7)
    return save_figure(figure, Path(path), title)


def format_ece(report: Mapping, tasks: Sequence[TaskSpec], *, scaled: bool = True) -> str:
    """The final head's ECE per task (%), raw softmax beside temperature-scaled (when the model has them)."""
    w = max(5, *(len(t.name) for t in tasks))
    if not scaled:
        lines = ["final: ECE (%), no temperature scaling"]
        lines += [f"  {t.name:>{w}} {100 * report['before']['ece'][t.name]:5.1f}" for t in tasks]
        lines.append(f"  {'mean':>{w}} {100 * report['before']['mean_ece']:5.1f}")
        return "\n".join(lines)
    lines = ["final: ECE (%), raw softmax -> temperature-scaled"]
    for t in tasks:
        before, after = report["before"]["ece"][t.name], report["after"]["ece"][t.name]
        lines.append(f"  {t.name:>{w}} {100 * before:5.1f} -> {100 * after:5.1f}")
    lines.append(
        f"  {'mean':>{w}} {100 * report['before']['mean_ece']:5.1f} -> {100 * report['after']['mean_ece']:5.1f}"
    )
    return "\n".join(lines)
