"""DeLong's test for correlated ROC curves (DeLong, DeLong & Clarke-Pearson, Biometrics 44:837–845, 1988).

Every score vector evaluated on the same cases has *placement values*: for each positive case, the
fraction of negatives it outscores (V10), and for each negative, the fraction of positives that outscore it
(V01), ties counting one half. The AUC is the mean of either; the covariance of several AUCs is
``S10 / m + S01 / n`` with S10, S01 the sample covariances of the placement values over the m positive and n
negative cases. A contrast ``L·AUC`` is then approximately normal with variance ``L S Lᵀ``.

The placement values are computed from mid-ranks (Sun & Xu, IEEE SPL 21:1389–1393, 2014) in
O((m + n) log(m + n)) per score vector; the pairwise definition above is what the tests check it against.
A contrast of *averages* of AUCs (the mean over seeds of a ``--seeds`` run) is covered by the same formula:
its weights are 1/k per member.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mmfuse.errors import UsageError


def _midranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks, tied values sharing the mean of their ranks (scipy's ``rankdata(method="average")``)."""
    order = np.argsort(x, kind="mergesort")
    sorted_x = x[order]
    boundaries = np.flatnonzero(np.r_[True, sorted_x[1:] != sorted_x[:-1], True])
    ranks_sorted = np.empty(x.size, dtype=np.float64)
    for start, stop in zip(boundaries[:-1], boundaries[1:], strict=True):
        ranks_sorted[start:stop] = 0.5 * (start + stop + 1)
    ranks = np.empty(x.size, dtype=np.float64)
    ranks[order] = ranks_sorted
    return ranks


def placements(scores: np.ndarray, positive: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """``(auc, v10, v01)`` of one score vector: the AUC and the placement values of positives and negatives."""
    scores = np.asarray(scores, dtype=np.float64)
    positive = np.asarray(positive, dtype=bool)
    pos, neg = scores[positive], scores[~positive]
    m, n = pos.size, neg.size
    if m == 0 or n == 0:
        raise UsageError("DeLong's test needs at least one positive and one negative case")
    ranks_all = _midranks(np.r_[pos, neg])
    ranks_pos, ranks_neg = _midranks(pos), _midranks(neg)
    v10 = (ranks_all[:m] - ranks_pos) / n
    v01 = 1.0 - (ranks_all[m:] - ranks_neg) / m
    return float(v10.mean()), v10, v01


def auc_covariance(scores: Sequence[np.ndarray], positive: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(aucs [k], covariance [k, k])`` of k score vectors on the same cases (DeLong's estimator)."""
    results = [placements(s, positive) for s in scores]
    aucs = np.array([r[0] for r in results])
    v10 = np.stack([r[1] for r in results])
    v01 = np.stack([r[2] for r in results])
    m, n = v10.shape[1], v01.shape[1]
    s10 = np.atleast_2d(np.cov(v10)) if m > 1 else np.zeros((len(scores), len(scores)))
    s01 = np.atleast_2d(np.cov(v01)) if n > 1 else np.zeros((len(scores), len(scores)))
    return aucs, s10 / m + s01 / n


@dataclass(frozen=True)
class DeLongResult:
    """AUCs of both sides (means over their members), their difference, its interval, z and two-sided p."""

    auc_a: float
    auc_b: float
    difference: float
    interval: tuple[float, float]
    z: float
    p_value: float
    positives: int
    negatives: int


def _normal_quantile(level: float) -> float:
    from statistics import NormalDist

    return NormalDist().inv_cdf(0.5 + level / 2)


def delong_test(
    scores_a: Sequence[np.ndarray],
    scores_b: Sequence[np.ndarray],
    positive: np.ndarray,
    *,
    level: float = 0.95,
) -> DeLongResult:
    """Test ``mean(AUC of scores_a) == mean(AUC of scores_b)`` on the same cases (paired).

    Each side is one or more score vectors (several: the members of a multi-seed run, averaged).
    When the difference has zero variance (identical rankings) the p-value is 1 if the difference is 0.
    """
    k_a, k_b = len(scores_a), len(scores_b)
    if not k_a or not k_b:
        raise UsageError("each side of DeLong's test needs at least one score vector")
    positive = np.asarray(positive, dtype=bool)
    aucs, covariance = auc_covariance([*scores_a, *scores_b], positive)
    contrast = np.r_[np.full(k_a, 1 / k_a), np.full(k_b, -1 / k_b)]
    difference = float(contrast @ aucs)
    variance = float(contrast @ covariance @ contrast)
    std = math.sqrt(max(variance, 0.0))
    if std > 0:
        z = difference / std
        p = math.erfc(abs(z) / math.sqrt(2))
    else:
        z = 0.0 if abs(difference) < 1e-12 else math.copysign(math.inf, difference)
        p = 1.0 if abs(difference) < 1e-12 else 0.0
    half = _normal_quantile(level) * std
    return DeLongResult(
        auc_a=float(aucs[:k_a].mean()),
        auc_b=float(aucs[k_a:].mean()),
        difference=difference,
        interval=(difference - half, difference + half),
        z=float(z),
        p_value=float(min(1.0, p)),
        positives=int(positive.sum()),
        negatives=int((~positive).sum()),
    )
