"""``--seeds 0,1,…``: one training per seed, then mean ± std tables in the style of the paper's Tables 6–10.

Each seed trains into ``RUN/seed_<k>/`` (a complete run directory, resumable on its own);
``RUN/summary.json`` and ``RUN/summary.md`` hold, per split and head, the mean and the standard
deviation over seeds (population, numpy's default) of ``avg_auc``, ``avg_acc``, the melanoma-set
averages, every task's accuracy and every class's AUC.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mmfuse.errors import UsageError
from mmfuse.fileio import atomic_write_text, write_json
from mmfuse.limits import MAX_SEED, MAX_SEEDS
from mmfuse.metrics_layout import HEADLINE_METRICS, metric_splits
from mmfuse.training.launch import Launcher, train_study

if TYPE_CHECKING:
    from mmfuse.training.trainer import RunEvaluator

SUMMARY_JSON = "summary.json"
SUMMARY_MD = "summary.md"


def parse_seeds(text: str) -> list[int]:
    """``"0,1,2"`` or ``"0-9"`` (inclusive) -> a list of distinct seeds in order."""
    seeds: list[int] = []
    try:
        for part in text.split(","):
            part = part.strip()
            if "-" in part[1:]:
                low, high = (int(x) for x in part.split("-", 1))
                if high - low + 1 > MAX_SEEDS:
                    raise UsageError(f"--seeds {part} names {high - low + 1} seeds; at most {MAX_SEEDS}")
                seeds += list(range(low, high + 1))
            elif part:
                seeds.append(int(part))
    except ValueError as exc:
        if isinstance(exc, UsageError):
            raise
        raise UsageError(f"--seeds expects integers like '0,1,2' or '0-9', got {text!r}") from None
    if len(set(seeds)) > MAX_SEEDS:
        raise UsageError(f"--seeds names {len(set(seeds))} seeds; at most {MAX_SEEDS}")
    outside = [s for s in seeds if not 0 <= s <= MAX_SEED]
    if outside:
        raise UsageError(f"--seeds: seeds must lie in [0, {MAX_SEED}], got {outside[0]}")
    if not seeds:
        raise UsageError(f"--seeds names no seed: {text!r}")
    return list(dict.fromkeys(seeds))


def _flatten(report: Mapping) -> dict[str, float]:
    """One head's report as ``{"avg_auc": .., "mel.auc": .., "acc.DIAG": .., "auc.DIAG.MEL": ..}``."""
    flat = {"avg_auc": report["avg_auc"], "avg_acc": report["avg_acc"]}
    for name, values in report.items():
        if name not in (*HEADLINE_METRICS, "tasks", "ci") and isinstance(values, Mapping):
            flat.update({f"{name}.{k}": v for k, v in values.items()})
    for task, entry in report["tasks"].items():
        flat[f"acc.{task}"] = entry["acc"]
        flat.update({f"auc.{task}.{c}": m["auc"] for c, m in entry["classes"].items()})
    return flat


def _stats(values: Sequence[float | None]) -> dict[str, float | int]:
    finite = np.array([v for v in values if v is not None and not math.isnan(v)], dtype=float)
    if finite.size == 0:
        return {"mean": math.nan, "std": math.nan, "n": 0}
    return {"mean": float(finite.mean()), "std": float(finite.std()), "n": int(finite.size)}


def summarize(runs: Mapping[int, Mapping]) -> dict:
    """``{"seeds": [...], split: {head: {metric: {"mean", "std", "n"}}}}`` from ``{seed: metrics.json}``."""
    first = next(iter(runs.values()))
    summary: dict = {"seeds": list(runs)}
    for split, heads in metric_splits(first).items():
        summary[split] = {}
        for head in heads:
            flats = [_flatten(metrics[split][head]) for metrics in runs.values()]
            summary[split][head] = {key: _stats([f.get(key) for f in flats]) for key in flats[0]}
    weights = [m["head_weights"] for m in runs.values() if "head_weights" in m]
    if weights:
        summary["head_weights"] = {h: _stats([w[h] for w in weights]) for h in weights[0]}
    return summary


def _cell(stat: Mapping) -> str:
    if not stat["n"]:
        return "n/a"
    if stat["n"] == 1:  # one seed has no spread: a "±0.0" would claim one
        return f"{100 * stat['mean']:.1f}"
    return f"{100 * stat['mean']:.1f}±{100 * stat['std']:.1f}"


def summary_markdown(summary: Mapping) -> str:
    """Markdown: per split, AVG AUC / AVG ACC per head (Tables 6, 7, 9, 10), then per-class AUC (Table 8)."""
    lines = [f"# Mean ± std over seeds {', '.join(map(str, summary['seeds']))} (%)", ""]
    for split, heads in summary.items():
        if split in ("seeds", "head_weights"):
            continue
        names = list(heads)
        lines += [f"## {split}", "", "| head | AVG AUC | AVG ACC |", "|---|---|---|"]
        lines += [f"| {h} | {_cell(heads[h]['avg_auc'])} | {_cell(heads[h]['avg_acc'])} |" for h in names]
        keys = [k for k in heads[names[0]] if k.startswith("auc.")]
        lines += ["", f"| task | class | {' | '.join(names)} |", "|---|---|" + "---|" * len(names)]
        for key in keys:
            _, task, cls = key.split(".", 2)
            lines.append(f"| {task} | {cls} | {' | '.join(_cell(heads[h][key]) for h in names)} |")
        lines.append("")
    return "\n".join(lines)


def run_seeds(
    config: Mapping,
    out: str | Path,
    seeds: Sequence[int],
    *,
    resume: bool = False,
    progress: bool | None = None,
    allow_changes: Sequence[str] = (),
    evaluator: RunEvaluator | None = None,
    launcher: Launcher | None = None,
) -> dict:
    """Train once per seed into ``out/seed_<k>`` and write the summary files; returns the summary.

    Every seed's run is evaluated by ``evaluator`` (:func:`mmfuse.pipeline.run_seeds` passes
    :mod:`mmfuse.evaluation`'s), whose metrics the summary averages. With ``resume``, finished seeds are
    kept, and an unfinished one continues with the recovery keys in ``allow_changes`` allowed to differ
    (as ``train(..., allow_changes=...)``). ``launcher`` (:mod:`mmfuse.training.launch`; inline by
    default) trains the seeds; the summary is written once every seed has finished, and a seed that
    failed is named in the :class:`~mmfuse.training.launch.RunsFailedError` raised after the others end.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    folders = {seed: out / f"seed_{seed}" for seed in seeds}
    finished_runs = train_study(
        {folders[s]: {**config, "train": {**config["train"], "seed": int(s)}} for s in seeds},
        what="seeds",
        folder=out,
        resume=resume,
        allow_changes=allow_changes,
        evaluator=evaluator,
        progress=progress,
        launcher=launcher,
    )
    runs = {seed: finished_runs[folders[seed]] for seed in seeds if folders[seed] in finished_runs}
    if not runs:
        return {}
    summary = summarize({seed: runs[seed] for seed in seeds if seed in runs})
    write_json(out / SUMMARY_JSON, summary)
    atomic_write_text(out / SUMMARY_MD, summary_markdown(summary))
    return summary
