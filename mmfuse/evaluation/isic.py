"""The ISIC challenges' metrics for one single-label task, with the official scorer's definitions.

The ISIC platform scores submissions with the ``isic-challenge-scoring`` package; these functions
reproduce its classification metrics (release 5.6.0) in NumPy, so a run reports the numbers the
leaderboard would show:

- per class, one-vs-rest, at the 0.5 threshold (a case is positive when its probability is > 0.5):
  ``sensitivity``, ``specificity``, ``dice`` (F1), ``ppv``, ``npv``; each is 1.0 when its denominator
  is zero (the scorer's "freebie");
- per class, from the probabilities: ``auc``, ``auc_sens_80`` (the ROC area above 80 % sensitivity,
  not normalised) and ``ap`` (average precision, scikit-learn's definition); undefined (NaN) for a
  class with no positive or no negative case, where the scorer would stop;
- macro averages: the mean over classes (NaN skipped);
- ``balanced_accuracy``: the mean over the classes present of the share of each class's cases whose
  arg-max is that class (a tie for the maximum counts as no prediction).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

THRESHOLD_METRICS = ("sensitivity", "specificity", "dice", "ppv", "npv")
RANKING_METRICS = ("auc", "auc_sens_80", "ap")
CLASS_METRICS = THRESHOLD_METRICS + RANKING_METRICS
SENSITIVITY_FLOOR = 0.80
# metrics.json keys under <split>/<head>/tasks/<task> (macro averages and the balanced accuracy).
SUMMARY_KEYS = ("balanced_accuracy", "macro_auc", "macro_auc_sens_80", "macro_ap", "macro_dice")


def _ratio(numerator: float, denominator: float) -> float:
    return 1.0 if denominator == 0 else numerator / denominator


def threshold_metrics(scores: np.ndarray, positive: np.ndarray) -> dict[str, float]:
    """Sensitivity, specificity, dice, PPV and NPV of ``scores > 0.5``."""
    predicted = scores > 0.5
    tp = float(np.sum(predicted & positive))
    tn = float(np.sum(~predicted & ~positive))
    fp = float(np.sum(predicted & ~positive))
    fn = float(np.sum(~predicted & positive))
    return {
        "sensitivity": _ratio(tp, tp + fn),
        "specificity": _ratio(tn, tn + fp),
        "dice": _ratio(2 * tp, 2 * tp + fp + fn),
        "ppv": _ratio(tp, tp + fp),
        "npv": _ratio(tn, tn + fn),
    }


def _area(x: np.ndarray, y: np.ndarray) -> float:
    """Trapezoidal area under ``y(x)`` (``numpy.trapezoid``, which older NumPy lacks)."""
    return float(np.sum(np.diff(x) * (y[1:] + y[:-1]) / 2))


def roc_points(
    scores: np.ndarray, positive: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(fpr, tpr, tps, fps)`` at every distinct threshold, highest first, after the (0, 0) point."""
    order = np.argsort(-scores, kind="mergesort")
    sorted_scores, hits = scores[order], positive[order].astype(np.float64)
    last_of_each = np.r_[np.flatnonzero(np.diff(sorted_scores)), hits.size - 1]
    tps = np.cumsum(hits)[last_of_each]
    fps = (last_of_each + 1) - tps
    tps, fps = np.r_[0.0, tps], np.r_[0.0, fps]
    return fps / fps[-1], tps / tps[-1], tps, fps


def ranking_metrics(scores: np.ndarray, positive: np.ndarray) -> dict[str, float]:
    """AUC, AUC above 80 % sensitivity and average precision; NaN without both kinds of case."""
    if positive.all() or not positive.any():
        return dict.fromkeys(RANKING_METRICS, math.nan)
    fpr, tpr, tps, fps = roc_points(scores, positive)
    start = int(np.searchsorted(tpr, SENSITIVITY_FLOOR, side="left"))
    fpr_at_floor = np.interp(SENSITIVITY_FLOOR, tpr[start - 1 : start + 1], fpr[start - 1 : start + 1])
    partial_tpr = np.r_[SENSITIVITY_FLOOR, tpr[start:]]
    partial_fpr = np.r_[fpr_at_floor, fpr[start:]]
    precision = tps[1:] / (tps[1:] + fps[1:])
    return {
        "auc": _area(fpr, tpr),
        "auc_sens_80": _area(partial_fpr, partial_tpr),
        "ap": float(np.sum(np.diff(tpr) * precision)),
    }


def balanced_accuracy(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """Mean per-class recall of the arg-max, over the classes present; a tied maximum predicts nothing."""
    top = probabilities.max(axis=1, keepdims=True)
    ties = (probabilities == top).sum(axis=1) > 1
    predicted = np.where(ties, -1, probabilities.argmax(axis=1))
    recalls = [np.mean(predicted[labels == c] == c) for c in np.unique(labels)]
    return float(np.mean(recalls))


def _nanmean(values: Sequence[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return float(np.mean(finite)) if finite else math.nan


def isic_metrics(probabilities, labels, classes: Sequence[str]) -> dict:
    """``{"balanced_accuracy", "macro_<metric>" ..., "isic_classes": {class: {metric: value}}}``.

    ``probabilities`` is ``[N, C]`` (rows need not sum to one), ``labels`` ``[N]`` class indices.
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    per_class = {}
    for index, name in enumerate(classes):
        positive = labels == index
        scores = probabilities[:, index]
        per_class[name] = {**threshold_metrics(scores, positive), **ranking_metrics(scores, positive)}
    report: dict = {"balanced_accuracy": balanced_accuracy(probabilities, labels)}
    for metric in CLASS_METRICS:
        report[f"macro_{metric}"] = _nanmean([per_class[c][metric] for c in classes])
    report["isic_classes"] = per_class
    return report
