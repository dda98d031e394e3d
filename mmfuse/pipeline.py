"""A run from start to report: train with :mod:`mmfuse.training`, then evaluate with :mod:`mmfuse.evaluation`.

The two packages never import each other; this module is where they meet. The trainer calls the
evaluation it is handed (:class:`~mmfuse.training.trainer.RunEvaluator`), and :data:`RUN_EVALUATION` is
the one every run uses: TTA predictions, temperatures and the head-weight search on the validation
split, the report files, then ``report.html``. ``mmfuse.training.train``, ``run_seeds`` and ``Trainer``
are this module's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import nn

from mmfuse.training import repeats, trainer
from mmfuse.training.trainer import RunEvaluator, TrainResult


def _evaluate(
    model: nn.Module, config: Mapping, out: Path, *, device: torch.device, progress: bool | None
) -> dict:
    # Deferred: a run trained with evaluate=False never imports torchmetrics.
    from mmfuse.evaluation.evaluate import evaluate_run

    return evaluate_run(model, config, out, device=device, progress=progress)


def _report(out: Path) -> Path:
    from mmfuse.evaluation.html_report import write_report

    return write_report(out)


RUN_EVALUATION = RunEvaluator(evaluate=_evaluate, report=_report)


class Trainer(trainer.Trainer):
    """:class:`mmfuse.training.trainer.Trainer` whose evaluated runs end with :data:`RUN_EVALUATION`.

    This is ``mmfuse.training.Trainer``: ``Trainer(config, out).fit()`` trains, evaluates and reports,
    as :func:`train` does; pass ``evaluator`` to end runs another way.
    """

    def __init__(
        self,
        config: Mapping,
        out: str | Path,
        *,
        resume: bool = False,
        evaluate: bool = True,
        progress: bool | None = None,
        allow_changes: Sequence[str] = (),
        evaluator: RunEvaluator | None = None,
    ) -> None:
        if evaluate and evaluator is None:
            evaluator = RUN_EVALUATION
        super().__init__(
            config,
            out,
            resume=resume,
            evaluate=evaluate,
            progress=progress,
            allow_changes=allow_changes,
            evaluator=evaluator,
        )


def train(
    config: Mapping,
    out: str | Path,
    *,
    resume: bool = False,
    evaluate: bool = True,
    progress: bool | None = None,
    allow_changes: Sequence[str] = (),
) -> TrainResult:
    """Train a model as ``config`` (from :func:`mmfuse.training.load_config`) says, into the run directory ``out``.

    ``resume`` continues from the last checkpoint in ``out``. With ``evaluate`` the run ends with TTA
    predictions, the head-weight search on the validation split and the report files. Under torchrun
    every process calls this; rank 0 writes every file. ``allow_changes`` names the recovery keys
    (:data:`~mmfuse.training.rundir.RECOVERY_KEYS`: learning rate, gradient clipping, AMP, epochs) that may
    differ from the run's stored config on ``resume``; every other difference is refused.
    """
    return trainer.train(
        config,
        out,
        resume=resume,
        evaluate=evaluate,
        progress=progress,
        allow_changes=allow_changes,
        evaluator=RUN_EVALUATION if evaluate else None,
    )


def run_seeds(
    config: Mapping,
    out: str | Path,
    seeds: Sequence[int],
    *,
    resume: bool = False,
    progress: bool | None = None,
) -> dict:
    """Train and evaluate once per seed into ``out/seed_<k>`` and write the summary files; returns the summary."""
    return repeats.run_seeds(config, out, seeds, resume=resume, progress=progress, evaluator=RUN_EVALUATION)
