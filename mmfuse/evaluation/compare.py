"""Paired comparison of two runs on the cases both predicted: bootstrap for the averages, DeLong per class.

A *run* is a training run directory (its ``predictions_<split>.csv``) or a ``--seeds`` folder (one
``seed_<k>/predictions_<split>.csv`` per seed, whose figures are the means over seeds). Both runs are
resampled with the same case draws, so the interval of the difference reflects only how the two models
disagree, not how the split happens to be drawn. The two-sided bootstrap p-value is
``min(1, 2 · min(#{Δ* ≤ 0} + 1, #{Δ* ≥ 0} + 1) / (B + 1))`` over the resampled differences Δ*, where a
difference within :data:`TIE_TOLERANCE` of zero is a tie counted on both sides (a resample on which the
two runs agree exactly can come out as ±1e-16 from floating-point rounding).
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mmfuse.errors import CompareError
from mmfuse.evaluation.bootstrap import (
    BootstrapOptions,
    percentile_interval,
    resample_counts,
    resampled_metrics,
)
from mmfuse.evaluation.delong import delong_test
from mmfuse.evaluation.metrics import ABSENT_CLASS
from mmfuse.metrics_layout import HEADLINE_METRICS
from mmfuse.runs import PREDICTIONS_FILE
from mmfuse.tasks import TaskSpec

SEED_PREFIX = "seed_"
TIE_TOLERANCE = 1e-12  # |Δ*| at most this is a tie: far above rounding, far below any real difference


@dataclass
class RunPredictions:
    """The final predictions of one run (or of each seed of a ``--seeds`` run) on one split."""

    name: str
    tasks: tuple[TaskSpec, ...]
    case_ids: list[str]
    labels: np.ndarray  # [N, T] class indices
    members: list[dict[str, np.ndarray]]  # per seed: task -> [N, C] probabilities


def _read_predictions(
    path: Path,
) -> tuple[tuple[TaskSpec, ...], list[str], np.ndarray, dict[str, np.ndarray]]:
    """Parse ``predictions_<split>.csv`` (see :func:`mmfuse.evaluation.writers.write_predictions_csv`)."""
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    if not rows or not rows[0] or rows[0][0] != "case_id":
        raise CompareError(f"{path}: not a predictions file (the header must start with case_id)")
    header = rows[0]
    tasks: list[tuple[str, int, list[str]]] = []  # name, label column, class names
    for column, name in enumerate(header[1:], start=1):
        if name.endswith("_label"):
            tasks.append((name[: -len("_label")], column, []))
        elif tasks and name.startswith(f"{tasks[-1][0]}_prob_"):
            tasks[-1][2].append(name[len(tasks[-1][0]) + len("_prob_") :])
        else:
            raise CompareError(f"{path}: unexpected column {name!r} in the header")
    specs = tuple(TaskSpec(name, tuple(classes)) for name, _, classes in tasks)
    lines = [(number, r) for number, r in enumerate(rows[1:], start=2) if r]  # csv gives [] for a blank line
    if not lines:
        raise CompareError(f"{path}: holds no cases")
    case_ids = [r[0] for _, r in lines]
    if len(set(case_ids)) != len(case_ids):
        raise CompareError(f"{path}: repeats a case id")
    labels = np.zeros((len(lines), len(specs)), dtype=np.int64)
    probabilities = {spec.name: np.zeros((len(lines), len(spec.classes))) for spec in specs}
    for row, (number, cells) in enumerate(lines):
        where = f"{path}, line {number} (case {cells[0]!r})"
        if len(cells) != len(header):
            raise CompareError(f"{where}: {len(cells)} cells under a header of {len(header)} columns")
        for t, (spec, (_, column, _)) in enumerate(zip(specs, tasks, strict=True)):
            if cells[column] not in spec.classes:
                raise CompareError(
                    f"{where}, column {header[column]!r}: label {cells[column]!r} is none of {list(spec.classes)}"
                )
            labels[row, t] = spec.index(cells[column])
            for k in range(len(spec.classes)):
                probabilities[spec.name][row, k] = _probability(cells, column + 1 + k, header, where)
    return specs, case_ids, labels, probabilities


def _probability(cells: Sequence[str], column: int, header: Sequence[str], where: str) -> float:
    """One probability cell, refused unless it is a number in [0, 1]: NaN, inf or a negative value would
    otherwise become an AUC and a p-value that look like results."""
    text = cells[column]
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not 0.0 <= value <= 1.0:  # also false for NaN
        raise CompareError(
            f"{where}, column {header[column]!r}: {text!r} is not a probability (a number in [0, 1]); "
            "the predictions file is damaged: evaluate the run again"
        )
    return value


def load_run_predictions(run: str | Path, split: str = "test") -> RunPredictions:
    """A run directory's predictions on ``split``, or each seed's of a ``--seeds`` folder."""
    run = Path(run)
    filename = PREDICTIONS_FILE.format(split=split)
    if not run.is_dir():
        raise FileNotFoundError(f"run directory not found: {run}")
    if (run / filename).is_file():
        files = [run / filename]
    else:
        files = sorted(
            (p / filename for p in run.glob(f"{SEED_PREFIX}*") if (p / filename).is_file()),
            key=lambda p: (
                int(p.parent.name[len(SEED_PREFIX) :]) if p.parent.name[len(SEED_PREFIX) :].isdigit() else 0
            ),
        )
    if not files:
        raise FileNotFoundError(
            f"{run} holds no {filename} (nor seed_<k>/{filename}); evaluate the run on split {split!r} first"
        )
    first = _read_predictions(files[0])
    members = [first[3]]
    for path in files[1:]:
        tasks, case_ids, labels, probabilities = _read_predictions(path)
        if tasks != first[0] or case_ids != first[1] or not np.array_equal(labels, first[2]):
            raise CompareError(
                f"{path} covers other cases or tasks than {files[0]}; the seeds must share a split"
            )
        members.append(probabilities)
    return RunPredictions(str(run), first[0], first[1], first[2], members)


def align(a: RunPredictions, b: RunPredictions) -> tuple[RunPredictions, RunPredictions]:
    """Both runs restricted to their shared cases, in ``a``'s order; refuses runs that cannot be paired."""
    if a.tasks != b.tasks:
        raise CompareError(
            f"{a.name} and {b.name} predict different tasks: "
            f"{[t.to_dict() for t in a.tasks]} vs {[t.to_dict() for t in b.tasks]}"
        )
    index_b = {c: i for i, c in enumerate(b.case_ids)}
    shared = [i for i, c in enumerate(a.case_ids) if c in index_b]
    if not shared:
        raise CompareError(
            f"{a.name} and {b.name} share no case (e.g. {a.case_ids[0]!r} vs {b.case_ids[0]!r}); "
            "a paired comparison needs predictions on the same cases"
        )
    rows_b = [index_b[a.case_ids[i]] for i in shared]
    differing = np.flatnonzero((a.labels[shared] != b.labels[rows_b]).any(axis=1))
    if differing.size:
        case = a.case_ids[shared[differing[0]]]
        raise CompareError(
            f"{a.name} and {b.name} disagree on the labels of {differing.size} shared case(s), e.g. {case!r}: "
            "they were evaluated on different data"
        )

    def subset(run: RunPredictions, rows: Sequence[int]) -> RunPredictions:
        return RunPredictions(
            run.name,
            run.tasks,
            [run.case_ids[i] for i in rows],
            run.labels[rows],
            [{t: p[rows] for t, p in member.items()} for member in run.members],
        )

    return subset(a, shared), subset(b, rows_b)


def _mean_metric(run: RunPredictions, counts: np.ndarray, name: str) -> np.ndarray:
    labels = torch.from_numpy(run.labels)
    values = [
        resampled_metrics({t: torch.from_numpy(p) for t, p in member.items()}, labels, run.tasks, counts)[
            name
        ]
        for member in run.members
    ]
    return np.mean(np.stack(values), axis=0)


def bootstrap_p_value(differences: np.ndarray) -> float:
    """Two-sided p-value of "no difference" from resampled differences (see the module docstring)."""
    finite = differences[~np.isnan(differences)]
    b = finite.size
    if b == 0:
        return float("nan")
    low = (np.count_nonzero(finite <= TIE_TOLERANCE) + 1) / (b + 1)
    high = (np.count_nonzero(finite >= -TIE_TOLERANCE) + 1) / (b + 1)
    return float(min(1.0, 2 * min(low, high)))


def compare_runs(
    a: RunPredictions,
    b: RunPredictions,
    *,
    bootstrap: BootstrapOptions | None = None,
    absent_class: str = ABSENT_CLASS,
) -> dict:
    """The comparison as plain data: both runs, the shared cases, avg AUC/ACC differences, DeLong per class."""
    bootstrap = bootstrap or BootstrapOptions()
    total_a, total_b = len(a.case_ids), len(b.case_ids)
    a, b = align(a, b)
    n = len(a.case_ids)
    counts = resample_counts(n, bootstrap.resamples, bootstrap.seed)
    once = np.ones((1, n), dtype=np.int32)
    result: dict = {
        "a": {"run": a.name, "members": len(a.members), "cases": total_a},
        "b": {"run": b.name, "members": len(b.members), "cases": total_b},
        "shared_cases": n,
        "bootstrap": bootstrap.to_dict(),
    }
    for metric in HEADLINE_METRICS:
        point_a, point_b = float(_mean_metric(a, once, metric)[0]), float(_mean_metric(b, once, metric)[0])
        differences = _mean_metric(a, counts, metric) - _mean_metric(b, counts, metric)
        result[metric] = {
            "a": point_a,
            "b": point_b,
            "difference": point_a - point_b,
            "interval": percentile_interval(differences, bootstrap.level),
            "p_value": bootstrap_p_value(differences),
        }
    delong: dict = {}
    for t, task in enumerate(a.tasks):
        for c, name in enumerate(task.classes):
            if name == absent_class:
                continue
            positive = a.labels[:, t] == c
            key = f"{task.name}.{name}"
            if positive.all() or not positive.any():
                delong[key] = None  # undefined AUC on these cases
                continue
            test = delong_test(
                [m[task.name][:, c] for m in a.members],
                [m[task.name][:, c] for m in b.members],
                positive,
                level=bootstrap.level,
            )
            delong[key] = {
                "a": test.auc_a,
                "b": test.auc_b,
                "difference": test.difference,
                "interval": list(test.interval),
                "z": test.z,
                "p_value": test.p_value,
                "positives": test.positives,
            }
    result["delong"] = delong
    return result


def _p(value: float | None) -> str:
    if value is None or value != value:
        return "n/a"
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def format_comparison(result: Mapping) -> str:
    """The console report of :func:`compare_runs` (figures in %)."""
    level = 100 * result["bootstrap"]["level"]
    lines = []
    for side in ("a", "b"):
        run = result[side]
        members = f", mean over {run['members']} seeds" if run["members"] > 1 else ""
        lines.append(f"{side.upper()}: {run['run']} ({run['cases']} cases{members})")
    lines.append(
        f"{result['shared_cases']} shared cases; paired bootstrap, {result['bootstrap']['resamples']} resamples, "
        f"seed {result['bootstrap']['seed']}, {level:.0f} % intervals"
    )
    lines.append("")
    lines.append(f"{'metric':<10}{'A':>8}{'B':>8}{'A - B':>8}  {f'{level:.0f} % CI':<17}{'p':>7}")
    for metric, label in (("avg_auc", "AVG AUC"), ("avg_acc", "AVG ACC")):
        row = result[metric]
        low, high = row["interval"]
        interval = "n/a" if low is None else f"[{100 * low:+.1f}, {100 * high:+.1f}]"
        lines.append(
            f"{label:<10}{100 * row['a']:8.1f}{100 * row['b']:8.1f}{100 * row['difference']:+8.1f}  "
            f"{interval:<17}{_p(row['p_value']):>7}"
        )
    tests = sum(row is not None for row in result["delong"].values())
    holm = result.get("adjust") == "holm"
    adjusted = (
        f"p Holm-adjusted over the {tests} class comparisons"
        if holm
        else f"p unadjusted for the {tests} class comparisons: --adjust holm controls the family-wise error"
    )
    keys = [key.split(".", 1) for key in result["delong"]]
    tw = max([4, *(len(task) for task, _ in keys)])
    cw = max([5, *(len(name) for _, name in keys)])
    lines += [
        "",
        f"DeLong's test per class AUC ({adjusted})",
        f"{'task':>{tw}} {'class':<{cw}} {'A':>7}{'B':>7}{'A - B':>8}  {f'{level:.0f} % CI':<17}{'z':>7}"
        f"{'p' if not holm else 'p Holm':>8}",
    ]
    for (task, name), row in zip(keys, result["delong"].values(), strict=True):
        if row is None:
            lines.append(f"{task:>{tw}} {name:<{cw}}   n/a (a single outcome on the shared cases)")
            continue
        low, high = row["interval"]
        p_value = row["p_holm"] if holm else row["p_value"]
        lines.append(
            f"{task:>{tw}} {name:<{cw}} {100 * row['a']:7.1f}{100 * row['b']:7.1f}{100 * row['difference']:+8.1f}  "
            f"{f'[{100 * low:+.1f}, {100 * high:+.1f}]':<17}{row['z']:7.2f}{_p(p_value):>8}"
        )
    return "\n".join(lines)


def holm_adjust(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment (1979): strong family-wise error control, no independence assumed."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    adjusted = [0.0] * len(p_values)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def adjust_delong(result: Mapping, method: str) -> dict:
    """``result`` with ``adjust`` set and, for ``holm``, each class row's ``p_holm``."""
    result = {**result, "adjust": method}
    if method != "holm":
        return result
    rows = {k: dict(r) for k, r in result["delong"].items() if r is not None}
    for key, p in zip(rows, holm_adjust([r["p_value"] for r in rows.values()]), strict=True):
        rows[key]["p_holm"] = p
    return {**result, "delong": {k: rows.get(k) for k in result["delong"]}}
