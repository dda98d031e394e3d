"""A run from start to report: train with :mod:`mmfuse.training`, then evaluate with :mod:`mmfuse.evaluation`.

The two packages never import each other; this module is where they meet, and the home of what trains
*and* evaluates: :func:`train`, :func:`run_seeds` and :func:`run_folds`. The trainer
(:class:`mmfuse.training.Trainer`) calls the evaluation it is handed
(:class:`~mmfuse.training.trainer.RunEvaluator`); :data:`RUN_EVALUATION` is the one every run uses: TTA
predictions, temperatures and the head-weight search on the validation split, the report files, then
``report.html``, and each epoch's validation metrics for the trackers.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mmfuse.threads import ThreadChoice
from mmfuse.training import repeats, trainer
from mmfuse.training.trainer import RunEvaluator, TrainResult

__all__ = ["RUN_EVALUATION", "run_folds", "run_seeds", "train"]


def _evaluate(
    model: nn.Module, config: Mapping, out: Path, *, device: torch.device, progress: bool | None
) -> dict:
    # Deferred: a run trained with evaluate=False never imports torchmetrics.
    from mmfuse.evaluation.evaluate import evaluate_run

    return evaluate_run(model, config, out, device=device, progress=progress)


def _report(out: Path) -> Path:
    from mmfuse.evaluation.html_report import write_report

    return write_report(out)


# Validation batches kept in memory up to this size (Derm7pt at 224 px: ~250 MB); past it, read each time.
VALIDATION_CACHE_BYTES = 512 * 2**20


def _validation(model: nn.Module, config: Mapping, *, device: torch.device) -> Callable[[nn.Module], dict]:
    """Each head's metrics on the validation split (no TTA), with the split decoded once per run."""
    from mmfuse.evaluation.derm7pt import report_groups
    from mmfuse.evaluation.evaluate import evaluation_dataset
    from mmfuse.evaluation.inference import collect_predictions
    from mmfuse.evaluation.metrics import head_metrics
    from mmfuse.runtime.data import dataset_options, evaluation_loader

    dataset = evaluation_dataset(model, dataset_options(config), config["data"]["val_split"])
    loader = evaluation_loader(dataset, batch_size=int(config["evaluation"]["batch_size"]))
    batches: list[dict] | None = []
    size = 0
    for batch in loader:
        size += sum(v.numel() * v.element_size() for v in batch.values() if isinstance(v, torch.Tensor))
        if size > VALIDATION_CACHE_BYTES:
            batches = None
            break
        batches.append(batch)
    groups = report_groups(model.tasks)

    def validate(current: nn.Module) -> dict:
        predictions = collect_predictions(current, batches or loader, device=device, progress=False)
        return {
            head: head_metrics(p, predictions.labels, current.tasks, groups=groups)
            for head, p in predictions.probabilities.items()
        }

    return validate


RUN_EVALUATION = RunEvaluator(evaluate=_evaluate, report=_report, validation=_validation)


def train(
    config: Mapping,
    out: str | Path,
    *,
    resume: bool = False,
    evaluate: bool = True,
    progress: bool | None = None,
    allow_changes: Sequence[str] = (),
    evaluator: RunEvaluator | None = None,
    threads: ThreadChoice | None = None,
) -> TrainResult:
    """Train as ``config`` says into the run folder ``out``, then evaluate and report with :data:`RUN_EVALUATION`.

    ``evaluator`` ends the run another way. With ``evaluate=False`` the run ends with the saved model
    (``metrics`` is ``None``); its trackers still show the validation metrics after each epoch. The
    other arguments are :func:`mmfuse.training.trainer.train`'s.
    """
    evaluator = evaluator or RUN_EVALUATION
    if not evaluate:
        evaluator = dataclasses.replace(evaluator, evaluate=None, report=None)
    return trainer.train(
        config,
        out,
        resume=resume,
        progress=progress,
        allow_changes=allow_changes,
        evaluator=evaluator,
        threads=threads,
    )


def run_seeds(config: Mapping, out: str | Path, seeds: Sequence[int], **options: Any) -> dict:
    """One evaluated run per seed into ``out/seed_<k>``, then the summary over them
    (:func:`~mmfuse.training.repeats.run_seeds` takes the same options)."""
    options["evaluator"] = options.get("evaluator") or RUN_EVALUATION
    return repeats.run_seeds(config, out, seeds, **options)


def run_folds(config: Mapping, out: str | Path, folds: int, **options: Any) -> dict:
    """One evaluated run per fold into ``out/fold_<k>`` (:func:`~mmfuse.training.crossval.train_folds` takes
    the same options), then ``RUN/cv.json`` and ``RUN/cv.md``; ``{}`` on a non-zero torchrun rank."""
    from mmfuse.cv_layout import fold_dir
    from mmfuse.evaluation.crossval import write_cv_summary
    from mmfuse.runs import CONFIG_FILE
    from mmfuse.tasks import TaskSpec
    from mmfuse.training.config import load_config
    from mmfuse.training.crossval import train_folds

    options["evaluator"] = options.get("evaluator") or RUN_EVALUATION
    plan, runs = train_folds(config, out, folds, **options)
    if len(runs) != folds:
        return {}
    tasks = load_config(fold_dir(out, 0) / CONFIG_FILE)["model"]["tasks"]
    task = next(t for t in tasks if t["name"] == plan["task"])
    return write_cv_summary(out, plan, runs, TaskSpec(task["name"], tuple(task["classes"])))
