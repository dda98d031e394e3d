"""Assemble the metrics of a split (every head plus the final Eq. 4 prediction) and print them."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch

from mmfuse.evaluation.derm7pt import report_groups
from mmfuse.evaluation.inference import Predictions
from mmfuse.evaluation.metrics import head_metrics
from mmfuse.model import mix_heads
from mmfuse.tasks import TaskSpec


def final_probabilities(
    predictions: Predictions, head_weights: Mapping[str, float]
) -> dict[str, torch.Tensor]:
    """Eq. 4 with the model's head weights (the primary head alone where the auxiliary image is missing)."""
    return mix_heads(predictions.probabilities, head_weights, predictions.auxiliary_present)


def split_metrics(
    predictions: Predictions, tasks: Sequence[TaskSpec], head_weights: Mapping[str, float]
) -> dict[str, dict]:
    """``{head: report}`` for each head present and ``final``; see :func:`head_metrics` for a report."""
    groups = report_groups(tasks)
    heads = {
        h: head_metrics(p, predictions.labels, tasks, groups=groups)
        for h, p in predictions.probabilities.items()
    }
    heads["final"] = head_metrics(
        final_probabilities(predictions, head_weights), predictions.labels, tasks, groups=groups
    )
    return heads


def _pct(value: float) -> str:
    return "  n/a" if value is None or math.isnan(value) else f"{100 * value:5.1f}"


def format_table(metrics: Mapping[str, Mapping], tasks: Sequence[TaskSpec]) -> str:
    """One row per head: AVG AUC, AVG ACC, the melanoma-set AUC when present, and each task's accuracy (%)."""
    names = [t.name for t in tasks]
    has_mel = any("mel" in m for m in metrics.values())
    header = ["head", "AVG AUC", "AVG ACC"] + (["MEL AUC"] if has_mel else []) + names
    widths = [max(9, len(h)) for h in header]
    lines = [
        "  ".join(
            h.rjust(w) if i else h.ljust(w) for i, (h, w) in enumerate(zip(header, widths, strict=True))
        )
    ]
    for head, report in metrics.items():
        cells = [head, _pct(report["avg_auc"]), _pct(report["avg_acc"])]
        if has_mel:
            cells.append(_pct(report["mel"]["auc"]) if "mel" in report else "  n/a")
        cells += [_pct(report["tasks"][n]["acc"]) for n in names]
        lines.append(
            "  ".join(
                c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
            )
        )
    return "\n".join(lines)
