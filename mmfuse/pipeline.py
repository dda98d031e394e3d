"""A run from start to report: train with :mod:`mmfuse.training`, then evaluate with :mod:`mmfuse.evaluation`.

The two packages never import each other; this module is where they meet. The trainer calls the
evaluation it is handed (:class:`~mmfuse.training.trainer.RunEvaluator`), and :data:`RUN_EVALUATION` is
the one every run uses: TTA predictions, temperatures and the head-weight search on the validation
split, the report files, then ``report.html``. ``mmfuse.training.train``, ``run_seeds`` and ``Trainer``
are this module's.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn

from mmfuse.training import repeats, trainer
from mmfuse.training.trainer import RunEvaluator

Result = TypeVar("Result")


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


class Trainer(trainer.Trainer):
    """:class:`mmfuse.training.trainer.Trainer` whose evaluated runs end with :data:`RUN_EVALUATION`.

    This is ``mmfuse.training.Trainer``: ``Trainer(config, out).fit()`` trains, evaluates and reports,
    as :func:`train` does; pass ``evaluator`` to end runs another way.
    """

    def __init__(
        self, config: Mapping, out: str | Path, *, evaluator: RunEvaluator | None = None, **options: Any
    ) -> None:
        if evaluator is None and options.get("evaluate", True):
            evaluator = RUN_EVALUATION
        super().__init__(config, out, evaluator=evaluator, **options)


def _with_run_evaluation(function: Callable[..., Result]) -> Callable[..., Result]:
    """``function`` (its signature and docstring too) with :data:`RUN_EVALUATION` unless given an ``evaluator``."""

    @functools.wraps(function)
    def with_run_evaluation(*args: Any, evaluator: RunEvaluator | None = None, **kwargs: Any) -> Result:
        return function(*args, evaluator=evaluator or RUN_EVALUATION, **kwargs)

    return with_run_evaluation


#: ``mmfuse.training.train``: train as the config says, then evaluate and report.
train = _with_run_evaluation(trainer.train)
#: ``mmfuse.training.run_seeds``: one evaluated run per seed, and the summary over them.
run_seeds = _with_run_evaluation(repeats.run_seeds)


def run_folds(config: Mapping, out: str | Path, folds: int, **options: Any) -> dict:
    """``mmfuse.training.run_folds``: one evaluated run per fold (:func:`~mmfuse.training.crossval.train_folds`
    takes the same options), then ``RUN/cv.json`` and ``RUN/cv.md``; ``{}`` on a non-zero torchrun rank."""
    from mmfuse.cv_layout import fold_dir
    from mmfuse.evaluation.crossval import write_cv_summary
    from mmfuse.runs import CONFIG_FILE
    from mmfuse.tasks import TaskSpec
    from mmfuse.training.config import load_config
    from mmfuse.training.crossval import train_folds

    options.setdefault("evaluator", RUN_EVALUATION)
    plan, runs = train_folds(config, out, folds, **options)
    if len(runs) != folds:
        return {}
    tasks = load_config(fold_dir(out, 0) / CONFIG_FILE)["model"]["tasks"]
    task = next(t for t in tasks if t["name"] == plan["task"])
    return write_cv_summary(out, plan, runs, TaskSpec(task["name"], tuple(task["classes"])))
