"""``mmfuse reproduce milk10k``: AMMFM and its peers, with metadata, over the same lesion-grouped folds of MILK10k.

Every row trains a k-fold cross-validation (:func:`mmfuse.pipeline.run_folds`) into ``OUT/runs/<preset>/``
with the recipe of ``examples/configs/milk10k.yaml`` (or ``--config``), the folds being the same for all
rows (same lesions, same seed). A finished fold is kept and a killed one resumes. The table gives, per
row, the parameters, the GFLOPs of one lesion (both images and its metadata), and the out-of-fold
balanced accuracy, macro AUC and macro dice with bootstrap intervals over the lesions:
``OUT/milk10k.md`` and ``OUT/milk10k.json``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from mmfuse.errors import UsageError
from mmfuse.fileio import atomic_write_text, write_json

ROWS: tuple[tuple[str, str], ...] = (
    ("AMMFM (Swin-T derm, MobileNetV3 clin)", "ammfm-swin"),
    ("AMMFM fast attention", "ammfm-swin-fast"),
    ("Baseline (two Swin-T, concat)", "baseline-swin"),
    ("FusionM4Net", "fusionm4net"),
    ("TFormer", "tformer"),
)
FOLDS = 5
TABLE_METRICS = ("balanced_accuracy", "macro_auc", "macro_dice")

# The recipe of examples/configs/milk10k.yaml (a test keeps the two equal).
RECIPE: dict = {
    "model": {"preset": "ammfm-swin", "pretrained": True},
    "data": {"format": "milk10k", "metadata": True, "num_workers": 8},
    "train": {
        "epochs": 60,
        "batch_size": 24,
        "lr": 1.0e-4,
        "swa": {"epochs": 10, "anneal_epochs": 3},
        "class_weights": "balanced",
    },
    "evaluation": {"tta": True, "weight_search": {"objective": "avg_auc"}, "bootstrap": {"resamples": 1000}},
}

# --quick: a pipeline check on a CPU in minutes (numbers mean nothing).
QUICK: dict = {
    "model": {"pretrained": False, "img_size": 32},
    "data": {"num_workers": 0, "device_cache": False},
    "train": {
        "epochs": 1,
        "batch_size": 8,
        "lr": 1e-3,
        "swa": {"epochs": 0, "anneal_epochs": 1},
        "amp": "none",
        "device": "cpu",
    },
    "evaluation": {"tta": False, "plots": False, "batch_size": 32, "bootstrap": {"resamples": 0}},
}
QUICK_LESIONS, QUICK_IMAGE_SIZE, QUICK_FOLDS = 48, 40, 3
INTERVAL_RESAMPLES = 1000


def rows(only: Sequence[str] | None = None) -> list[tuple[str, str]]:
    if not only:
        return list(ROWS)
    unknown = sorted(set(only) - {preset for _, preset in ROWS})
    if unknown:
        raise UsageError(f"milk10k has no rows {unknown}; its rows: {[p for _, p in ROWS]}")
    return [row for row in ROWS if row[1] in only]


def row_config(base: Mapping, preset: str, *, quick: bool = False) -> dict:
    """``base`` with the row's preset (every other model key but ``pretrained`` dropped) and metadata on."""
    from mmfuse.reproduce import _merge
    from mmfuse.training.config import resolve

    config = _merge(base, {})
    keep = {k: v for k, v in config.get("model", {}).items() if k in ("pretrained", "pretrained_files")}
    config["model"] = {"preset": preset, **keep}
    config["data"] = {**config.get("data", {}), "metadata": config.get("data", {}).get("metadata") or True}
    if quick:
        config = _merge(config, QUICK)
    return resolve(config)


def run_rows(base: Mapping, out: Path, folds: int, *, quick: bool, only: Sequence[str] | None = None) -> None:
    """Cross-validate every row not yet finished (a killed fold resumes)."""
    from mmfuse.cv_layout import CV_JSON
    from mmfuse.pipeline import run_folds

    for _, preset in rows(only):
        directory = out / "runs" / preset
        if (directory / CV_JSON).is_file():
            print(f"done     {preset}")
            continue
        print(
            f"{'resume' if directory.exists() else 'train':<8} {preset} ({folds} folds) -> {directory}",
            flush=True,
        )
        run_folds(row_config(base, preset, quick=quick), directory, folds, resume=directory.exists())


def _gflops(run_dir: Path) -> float:
    """GFLOPs of one lesion (both images, its metadata) through the saved model of a fold."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from mmfuse.runs import RunDir

    model = RunDir(run_dir).load_model().eval()
    size = int(model.preprocessing["img_size"])
    image = torch.zeros(1, 3, size, size)
    inputs: dict = {"primary": image, "auxiliary": image}
    encoding = getattr(model, "metadata_encoding", None)
    if encoding is not None:
        inputs.update(
            metadata=torch.zeros(1, encoding.size), metadata_present=torch.ones(1, dtype=torch.bool)
        )
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(**inputs)
    return counter.get_total_flops() / 1e9


def _interval(values: np.ndarray) -> list[float | None]:
    from mmfuse.evaluation.bootstrap import percentile_interval

    return percentile_interval(values)


def row_entry(label: str, preset: str, directory: Path) -> dict:
    """One table row from a finished cross-validation: cost, out-of-fold metrics and their intervals."""
    from mmfuse.cv_layout import CV_JSON, fold_dir
    from mmfuse.evaluation.bootstrap import resample_counts, resampled_isic_metrics
    from mmfuse.evaluation.crossval import out_of_fold_predictions
    from mmfuse.params import count_parameters
    from mmfuse.runs import RunDir
    from mmfuse.tasks import TaskSpec

    summary = json.loads((directory / CV_JSON).read_text())
    model = RunDir(fold_dir(directory, 0)).load_model()
    task = model.tasks[0]
    ids, labels, probabilities = out_of_fold_predictions(directory, summary["folds"], task.name, task.classes)
    counts = resample_counts(len(ids), INTERVAL_RESAMPLES, 0)
    resampled = resampled_isic_metrics(
        probabilities.numpy(), labels.numpy(), TaskSpec(task.name, task.classes), counts
    )
    oof = summary["out_of_fold"]
    return {
        "label": label,
        "preset": preset,
        "folds": summary["folds"],
        "lesions": len(ids),
        "params": count_parameters(model),
        "gflops": _gflops(fold_dir(directory, 0)),
        **{m: oof[m] for m in TABLE_METRICS},
        "intervals": {m: _interval(resampled[f"isic.{task.name}.{m}"]) for m in TABLE_METRICS},
    }


def _cell(value: float | None, interval: Sequence[float | None]) -> str:
    if value is None or math.isnan(value):
        return "n/a"
    if interval[0] is None:
        return f"{100 * value:.1f}"
    return f"{100 * value:.1f} [{100 * interval[0]:.1f}, {100 * interval[1]:.1f}]"


def markdown(table: Mapping) -> str:
    lines = [
        f"# MILK10k: {table['folds']}-fold lesion-grouped cross-validation, out-of-fold metrics (%, 95 % interval)",
        "",
        f"data: {table['data']}"
        + (" (synthetic, --quick: the numbers check the pipeline only)" if table["quick"] else ""),
        "",
        "| model | preset | params (M) | GFLOPs | balanced acc. | macro AUC | macro dice |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in table["rows"]:
        cells = " | ".join(_cell(r[m], r["intervals"][m]) for m in TABLE_METRICS)
        lines.append(
            f"| {r['label']} | {r['preset']} | {r['params'] / 1e6:.1f} | {r['gflops']:.2f} | {cells} |"
        )
    return "\n".join(lines) + "\n"


def write_table(out: Path, folds: int, data: str, *, quick: bool, only: Sequence[str] | None = None) -> dict:
    table = {
        "folds": folds,
        "data": data,
        "quick": quick,
        "rows": [row_entry(label, preset, out / "runs" / preset) for label, preset in rows(only)],
    }
    write_json(out / "milk10k.json", table)
    atomic_write_text(out / "milk10k.md", markdown(table))
    return table
