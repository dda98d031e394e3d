"""A run is trained by mmfuse.training and evaluated by mmfuse.evaluation, put together in mmfuse.pipeline."""

from __future__ import annotations

import mmfuse.pipeline
import mmfuse.training
from mmfuse.training import trainer


def test_training_has_one_trainer_and_leaves_evaluated_runs_to_the_pipeline():
    # The trainer is one class; what trains *and* evaluates is mmfuse.pipeline's (docs/training.md).
    assert mmfuse.training.Trainer is trainer.Trainer
    assert not hasattr(mmfuse.pipeline, "Trainer")
    for name in ("train", "run_seeds", "run_folds"):
        assert callable(getattr(mmfuse.pipeline, name))
        assert not hasattr(mmfuse.training, name), f"mmfuse.training.{name} would evaluate nothing"


class _Recorder:
    """Stands in for the trainer: records the evaluator each run is handed."""

    evaluators: list = []

    def __init__(self, config, out, *, evaluator=None, **options):
        self.evaluators.append(evaluator)
        self.claim = self

    def fit(self):
        return "fitted"

    def release(self):
        pass


def test_train_evaluates_with_the_run_evaluation_unless_told_otherwise(monkeypatch, tmp_path):
    monkeypatch.setattr(trainer, "Trainer", _Recorder)
    _Recorder.evaluators = []
    assert mmfuse.pipeline.train({}, tmp_path) == "fitted"
    mine = trainer.RunEvaluator(evaluate=lambda *a, **k: {})
    mmfuse.pipeline.train({}, tmp_path, evaluator=mine)
    mmfuse.pipeline.train({}, tmp_path, evaluate=False)
    default, given, unevaluated = _Recorder.evaluators
    assert default is mmfuse.pipeline.RUN_EVALUATION and given is mine
    # --no-eval: nothing evaluated or reported, yet the trackers still get their validation metrics.
    assert unevaluated.evaluate is None and unevaluated.report is None
    assert unevaluated.validation is mmfuse.pipeline.RUN_EVALUATION.validation


def test_the_trainer_without_an_evaluator_evaluates_nothing(monkeypatch, tmp_path):
    # evaluator=None is the whole switch: no bool beside it, no evaluation imported.
    monkeypatch.setattr(trainer, "Trainer", _Recorder)
    _Recorder.evaluators = []
    trainer.train({}, tmp_path)
    assert _Recorder.evaluators == [None]
