"""Bootstrap confidence intervals of the paper's metrics, vectorised over resamples.

A resample draws the split's cases with replacement; it is stored as a ``[B, N]`` matrix of counts (how
often each case was drawn), so every metric of every resample is a handful of matrix products instead of a
Python loop: AUC is the count-weighted Mann–Whitney statistic (ties count one half), accuracy a
count-weighted mean. The same count matrix serves every head, class and run, which makes the intervals of
one evaluation mutually consistent and a comparison of two runs *paired*.

Intervals are percentile intervals (Efron & Tibshirani 1993, ch. 13). A resample in which a class has no
positive or no negative case gives that class no AUC; averages skip it, as on the full split.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from mmfuse.errors import UsageError
from mmfuse.evaluation.isic import SUMMARY_KEYS as ISIC_SUMMARY_KEYS
from mmfuse.evaluation.isic import isic_metrics
from mmfuse.evaluation.metrics import ABSENT_CLASS, CLASS_METRICS
from mmfuse.limits import MAX_RESAMPLES, MAX_SEED
from mmfuse.tasks import TaskSpec

DEFAULT_RESAMPLES = 1000
DEFAULT_LEVEL = 0.95


@dataclass(frozen=True)
class BootstrapOptions:
    """How many resamples, their seed and the interval's coverage."""

    resamples: int = DEFAULT_RESAMPLES
    seed: int = 0
    level: float = DEFAULT_LEVEL

    def __post_init__(self) -> None:
        if not 1 <= int(self.resamples) <= MAX_RESAMPLES:
            raise UsageError(
                f"bootstrap resamples must be an integer in [1, {MAX_RESAMPLES}], got {self.resamples!r}"
            )
        if not 0 <= int(self.seed) <= MAX_SEED:
            raise UsageError(f"bootstrap seed must be an integer in [0, {MAX_SEED}], got {self.seed!r}")
        if not 0.0 < float(self.level) < 1.0:
            raise UsageError(f"bootstrap level must lie in (0, 1), got {self.level!r}")

    def to_dict(self) -> dict:
        return {"resamples": int(self.resamples), "seed": int(self.seed), "level": float(self.level)}


def resample_counts(num_cases: int, resamples: int, seed: int) -> np.ndarray:
    """``[resamples, num_cases]`` int32: how often each case is drawn in each resample (rows sum to N)."""
    if num_cases < 1:
        raise UsageError("cannot bootstrap an empty split")
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, num_cases, size=(resamples, num_cases))
    offsets = (np.arange(resamples) * num_cases)[:, None]
    flat = np.bincount((draws + offsets).ravel(), minlength=resamples * num_cases)
    return flat.reshape(resamples, num_cases).astype(np.int32)


def weighted_auc(scores: np.ndarray, positive: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """AUC of ``scores`` for the ``positive`` cases, one per row of ``counts`` (NaN where undefined).

    With all counts 1 this is the ordinary AUC (probability that a positive outscores a negative, ties 1/2).
    """
    order = np.argsort(scores, kind="stable")
    s, pos = scores[order], positive[order].astype(bool)
    c = counts[:, order].astype(np.float64)
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    group = np.cumsum(np.r_[True, s[1:] != s[:-1]]) - 1
    neg_group = np.add.reduceat(c * ~pos, starts, axis=1)
    neg_below = np.cumsum(neg_group, axis=1) - neg_group
    wins = (neg_below + 0.5 * neg_group)[:, group]
    numerator = ((c * pos) * wins).sum(axis=1)
    pairs = (c * pos).sum(axis=1) * (c * ~pos).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(pairs > 0, numerator / np.where(pairs > 0, pairs, 1), np.nan)


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """sklearn's ``zero_division=0``: 0 where the denominator is 0."""
    return np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1), 0.0)


def _nanmean_rows(rows: Sequence[np.ndarray]) -> np.ndarray:
    stack = np.stack(rows)
    finite = ~np.isnan(stack)
    total = np.where(finite, stack, 0.0).sum(axis=0)
    n = finite.sum(axis=0)
    return np.where(n > 0, total / np.where(n > 0, n, 1), np.nan)


def resampled_metrics(
    probabilities: Mapping[str, torch.Tensor],
    labels: torch.Tensor,
    tasks: Sequence[TaskSpec],
    counts: np.ndarray,
    *,
    groups: Mapping[str, Sequence[tuple[str, str]]] | None = None,
    absent_class: str = ABSENT_CLASS,
) -> dict[str, np.ndarray]:
    """Each metric over the resamples, flat: ``avg_auc``, ``avg_acc``, ``acc.T``, ``auc.T.C``, ``mel.auc``…

    Every value is a ``[B]`` array; the definitions are :func:`mmfuse.evaluation.metrics.head_metrics`'s.
    """
    labels_np = labels.detach().long().cpu().numpy()
    n = counts.sum(axis=1).astype(np.float64)
    out: dict[str, np.ndarray] = {}
    per_class: dict[tuple[str, str], dict[str, np.ndarray]] = {}
    accs, aucs = [], []
    for i, task in enumerate(tasks):
        probs = probabilities[task.name].detach().float().cpu().numpy()
        target = labels_np[:, i]
        predicted = probs.argmax(axis=1)
        acc = (counts @ (predicted == target).astype(np.float64)) / n
        out[f"acc.{task.name}"] = acc
        accs.append(acc)
        for c, name in enumerate(task.classes):
            is_c, said_c = target == c, predicted == c
            tp = counts @ (is_c & said_c).astype(np.float64)
            fp = counts @ (~is_c & said_c).astype(np.float64)
            fn = counts @ (is_c & ~said_c).astype(np.float64)
            tn = n - tp - fp - fn
            auc = weighted_auc(probs[:, c], is_c, counts)
            per_class[(task.name, name)] = {
                "auc": auc,
                "precision": _ratio(tp, tp + fp),
                "sensitivity": _ratio(tp, tp + fn),
                "specificity": _ratio(tn, tn + fp),
            }
            out[f"auc.{task.name}.{name}"] = auc
            if name != absent_class:
                aucs.append(auc)
    out["avg_auc"] = _nanmean_rows(aucs)
    out["avg_acc"] = np.mean(np.stack(accs), axis=0)
    if len(tasks) == 1:  # a single-label problem (a challenge's): its ISIC summary gets intervals too
        probs = probabilities[tasks[0].name].detach().double().cpu().numpy()
        out.update(resampled_isic_metrics(probs, labels_np[:, 0], tasks[0], counts))
    for group, members in (groups or {}).items():
        for metric in CLASS_METRICS:
            out[f"{group}.{metric}"] = _nanmean_rows([per_class[m][metric] for m in members])
    return out


def resampled_isic_metrics(
    probabilities: np.ndarray, labels: np.ndarray, task: TaskSpec, counts: np.ndarray
) -> dict[str, np.ndarray]:
    """``isic.<task>.<key>`` over the resamples for the ISIC summary keys (each resample scored as a whole)."""
    values = {key: np.empty(len(counts)) for key in ISIC_SUMMARY_KEYS}
    cases = np.arange(counts.shape[1])
    for b, row in enumerate(counts):
        drawn = np.repeat(cases, row.astype(np.int64))
        report = isic_metrics(probabilities[drawn], labels[drawn], task.classes)
        for key in ISIC_SUMMARY_KEYS:
            values[key][b] = report[key]
    return {f"isic.{task.name}.{key}": v for key, v in values.items()}


def percentile_interval(values: np.ndarray, level: float = DEFAULT_LEVEL) -> list[float | None]:
    """``[low, high]`` percentile interval over the finite values; ``[None, None]`` when there are none."""
    finite = values[~np.isnan(values)]
    if finite.size == 0:
        return [None, None]
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(finite, [tail, 100 - tail])
    return [float(low), float(high)]


def nest_intervals(flat: Mapping[str, list]) -> dict:
    """Flat keys (``auc.DIAG.MEL``) to the shape of a head report (``tasks.DIAG.classes.MEL.auc``)."""
    nested: dict = {}
    for key, interval in flat.items():
        parts = key.split(".")
        if parts[0] == "acc":
            nested.setdefault("tasks", {}).setdefault(parts[1], {})["acc"] = interval
        elif parts[0] == "auc":
            task = nested.setdefault("tasks", {}).setdefault(parts[1], {})
            task.setdefault("classes", {}).setdefault(".".join(parts[2:]), {})["auc"] = interval
        elif parts[0] == "isic":
            nested.setdefault("tasks", {}).setdefault(parts[1], {})[".".join(parts[2:])] = interval
        elif len(parts) == 2:
            nested.setdefault(parts[0], {})[parts[1]] = interval
        else:
            nested[key] = interval
    return nested


def head_intervals(
    probabilities: Mapping[str, torch.Tensor],
    labels: torch.Tensor,
    tasks: Sequence[TaskSpec],
    counts: np.ndarray,
    *,
    level: float = DEFAULT_LEVEL,
    groups: Mapping[str, Sequence[tuple[str, str]]] | None = None,
) -> dict:
    """Intervals of one head's report, nested like the report (``avg_auc``, ``mel.auc``, per task and class)."""
    resampled = resampled_metrics(probabilities, labels, tasks, counts, groups=groups)
    return nest_intervals({k: percentile_interval(v, level) for k, v in resampled.items()})
