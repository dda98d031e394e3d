"""A run is trained by mmfuse.training and evaluated by mmfuse.evaluation, put together in mmfuse.pipeline."""

from __future__ import annotations

import pytest

import mmfuse.pipeline
import mmfuse.training
from mmfuse.errors import UsageError
from mmfuse.training.trainer import Trainer


def test_the_documented_entry_points_are_the_pipelines():
    # `from mmfuse.training import train` (docs/training.md) still trains and evaluates.
    from mmfuse.training import Trainer as PublicTrainer
    from mmfuse.training import run_seeds, train

    assert train is mmfuse.pipeline.train
    assert run_seeds is mmfuse.pipeline.run_seeds
    assert PublicTrainer is mmfuse.pipeline.Trainer and issubclass(PublicTrainer, Trainer)
    assert {"train", "run_seeds", "Trainer"} <= set(mmfuse.training.__all__)
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        mmfuse.training.nothing  # noqa: B018


def test_the_public_trainer_ends_evaluated_runs_with_the_run_evaluation(monkeypatch, tmp_path):
    seen = {}

    def core_init(self, config, out, **options):
        seen.update(options)

    monkeypatch.setattr(Trainer, "__init__", core_init)
    mmfuse.pipeline.Trainer({}, tmp_path)
    assert seen.get("evaluate", True) is True and seen["evaluator"] is mmfuse.pipeline.RUN_EVALUATION
    mmfuse.pipeline.Trainer({}, tmp_path, evaluate=False)
    assert seen["evaluator"] is None


def test_a_trainer_asked_to_evaluate_without_an_evaluation_stops_before_writing(tmp_path):
    with pytest.raises(UsageError, match="needs an evaluator"):
        Trainer({"train": {}}, tmp_path / "run", evaluate=True)
    assert not (tmp_path / "run").exists()


def test_train_and_run_seeds_keep_the_core_signatures_with_the_run_evaluation(monkeypatch, tmp_path):
    import inspect

    from mmfuse.training import repeats, trainer

    assert inspect.signature(mmfuse.training.train) == inspect.signature(trainer.train)
    assert inspect.signature(mmfuse.training.run_seeds) == inspect.signature(repeats.run_seeds)
    evaluators = []

    class Recorder:
        def __init__(self, config, out, *, evaluator=None, **options):
            evaluators.append(evaluator)

        def fit(self):
            return "fitted"

        def _release_lock(self):
            pass

    monkeypatch.setattr(trainer, "Trainer", Recorder)
    assert mmfuse.training.train({}, tmp_path) == "fitted"
    mine = object()
    mmfuse.training.train({}, tmp_path, evaluator=mine)
    assert evaluators == [mmfuse.pipeline.RUN_EVALUATION, mine]
