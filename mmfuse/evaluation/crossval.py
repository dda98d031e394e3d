"""The summary of a cross-validation (:mod:`mmfuse.training.crossval`): ``RUN/cv.json`` and ``RUN/cv.md``.

Per split and head, each metric's mean ± std over the folds; the out-of-fold metrics of the final
prediction (every fold's test split put together: each case once); the fold plan with its per-fold
class counts and notes (a class with fewer groups than folds).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from mmfuse.cv_layout import CV_JSON, CV_MD, fold_dir
from mmfuse.errors import DataError
from mmfuse.evaluation.metrics import task_metrics
from mmfuse.fileio import atomic_write_text, write_json
from mmfuse.metrics_layout import HEADLINE_METRICS, metric_splits
from mmfuse.runs import PREDICTIONS_FILE
from mmfuse.tasks import TaskSpec

SUMMARY_METRICS = (
    "avg_auc",
    "avg_acc",
    "balanced_accuracy",
    "macro_auc",
    "macro_auc_sens_80",
    "macro_ap",
    "macro_dice",
)


def write_cv_summary(out: str | Path, plan: Mapping, runs: Mapping[int, Mapping], task: TaskSpec) -> dict:
    """Write ``cv.json`` and ``cv.md`` for the finished folds ``runs`` (``{fold: metrics.json}``) of the
    single-label ``task`` the folds were stratified by."""
    out = Path(out)
    summary = summarize_folds(out, runs, plan, task)
    write_json(out / CV_JSON, summary)
    atomic_write_text(out / CV_MD, cv_markdown(summary))
    return summary


def _stats(values: Sequence[float | None]) -> dict:
    finite = np.array([v for v in values if v is not None and not math.isnan(v)], dtype=float)
    if finite.size == 0:
        return {"mean": None, "std": None, "n": 0}
    return {"mean": float(finite.mean()), "std": float(finite.std()), "n": int(finite.size)}


def _head_values(report: Mapping, task: str) -> dict[str, float | None]:
    entry = report["tasks"][task]
    return {m: report[m] if m in HEADLINE_METRICS else entry.get(m) for m in SUMMARY_METRICS}


def out_of_fold_predictions(
    out: Path, folds: int, task_name: str, classes: Sequence[str]
) -> tuple[list[str], torch.Tensor, torch.Tensor]:
    """Case ids, labels and final probabilities of every fold's test split, each case once."""
    ids: list[str] = []
    labels: list[int] = []
    rows: list[list[float]] = []
    for fold in range(folds):
        with (fold_dir(out, fold) / PREDICTIONS_FILE.format(split="test")).open(newline="") as fh:
            for row in csv.DictReader(fh):
                ids.append(row["case_id"])
                labels.append(list(classes).index(row[f"{task_name}_label"]))
                rows.append([float(row[f"{task_name}_prob_{c}"]) for c in classes])
    if len(set(ids)) != len(ids):
        raise DataError(f"{out}: the folds' test splits overlap; they must partition the cases")
    return ids, torch.tensor(labels), torch.tensor(rows, dtype=torch.float64)


def summarize_folds(out: Path, runs: Mapping[int, Mapping], plan: Mapping, task: TaskSpec) -> dict:
    """Mean ± std over folds per split and head, the out-of-fold metrics and the fold plan."""
    first = next(iter(runs.values()))
    per_fold: dict = {}
    for split, heads in metric_splits(first).items():
        per_fold[split] = {
            head: {
                m: _stats([_head_values(runs[k][split][head], task.name)[m] for k in runs])
                for m in SUMMARY_METRICS
            }
            for head in heads
        }
    ids, labels, probabilities = out_of_fold_predictions(out, plan["folds"], task.name, task.classes)
    oof = task_metrics(probabilities, labels, task)
    return {
        **plan,
        "per_fold": per_fold,
        "out_of_fold": {"cases": len(ids), **{k: v for k, v in oof.items() if k != "classes"}},
    }


def _pct(stat: Mapping) -> str:
    mean, std = stat.get("mean"), stat.get("std")
    if mean is None or math.isnan(mean):
        return "n/a"
    return f"{100 * mean:.1f}" + ("" if std is None else f" ± {100 * std:.1f}")


def cv_markdown(summary: Mapping) -> str:
    """The summary as Markdown: the per-fold mean ± std table, out-of-fold metrics, class counts, notes."""
    folds = summary["folds"]
    lines = [
        f"# {folds}-fold cross-validation, grouped by {summary['group_by']}, stratified by {summary['task']} (seed {summary['seed']})",
        "",
    ]
    header = "| split | head | " + " | ".join(SUMMARY_METRICS) + " |"
    lines += ["Mean ± std over folds (%):", "", header, "|---|---|" + "---|" * len(SUMMARY_METRICS)]
    for split, heads in summary["per_fold"].items():
        for head, stats in heads.items():
            lines.append(
                f"| {split} | {head} | " + " | ".join(_pct(stats[m]) for m in SUMMARY_METRICS) + " |"
            )
    oof = summary["out_of_fold"]
    keys = [k for k in SUMMARY_METRICS if k in oof] + (["acc"] if "acc" in oof else [])
    lines += ["", f"Out-of-fold (final prediction, {oof['cases']} cases, %):", ""]
    lines += ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines.append("| " + " | ".join(_pct({"mean": oof[k]}) for k in keys) + " |")
    classes = list(next(iter(summary["class_counts"].values()))["test"])
    lines += [
        "",
        "Test-fold class counts:",
        "",
        "| fold | " + " | ".join(classes) + " |",
        "|---|" + "---|" * len(classes),
    ]
    for fold, counts in summary["class_counts"].items():
        lines.append(f"| {fold} | " + " | ".join(str(counts["test"][c]) for c in classes) + " |")
    if summary["notes"]:
        lines += ["", *(f"Note: {n}." for n in summary["notes"])]
    return "\n".join(lines) + "\n"
