"""Experiment trackers: what a researcher watching a run in TensorBoard, MLflow or W&B relies on."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from test_training_fixtures import make_release, tiny_config, write_config

import mmfuse
from mmfuse.cli import main
from mmfuse.errors import RunConfigError
from mmfuse.pipeline import train
from mmfuse.registry import TRACKERS
from mmfuse.tracking import TRACKING_FILE, Tracker, check_track, head_scalars

QUICK = {"tta": False, "plots": False, "bootstrap": {"resamples": 0}, "temperature_scaling": False}


def _needs(package: str):
    return pytest.mark.skipif(
        importlib.util.find_spec(package) is None,
        reason=f"{package} is not installed (pip install {package})",
    )


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    return make_release(tmp_path_factory.mktemp("tracking") / "derm7pt")


def _config(release, epochs: int = 2, **train_options):
    return tiny_config(
        release,
        train={"epochs": epochs, "swa": {"epochs": 1, "anneal_epochs": 1}, **train_options},
        evaluation=QUICK,
    )


def _events(run: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    return EventAccumulator(str(run / "tb"), size_guidance={"scalars": 0}).Reload()


def test_builtin_trackers_come_through_the_hook_and_unknown_names_are_refused():
    assert {"tensorboard", "mlflow", "wandb"} <= set(mmfuse.tracking.list_trackers())
    assert TRACKERS.entry("tensorboard").provider == "mmfuse_plugins.trackers"
    with pytest.raises(RunConfigError, match=r"unknown tracker 'tensorbord'; available: .*tensorboard"):
        check_track(["tensorbord"])


def test_head_scalars_keep_the_headline_numbers_and_drop_undefined_ones():
    report = {
        "avg_auc": 0.8,
        "avg_acc": 0.6,
        "mel": {"auc": float("nan"), "sensitivity": 0.5},
        "tasks": {"DIAG": {"acc": 0.7, "classes": {}}},
    }
    scalars = head_scalars({"valid": {"fusion": report}, "head_weights": {"fusion": 1.0}})
    assert scalars == {
        "valid/fusion/avg_auc": 0.8,
        "valid/fusion/avg_acc": 0.6,
        "valid/fusion/acc/DIAG": 0.7,
        "valid/fusion/mel/sensitivity": 0.5,
        "head_weights/fusion": 1.0,
    }


@_needs("tensorboard")
@pytest.mark.slow
def test_default_train_writes_tensorboard_scalars_and_hparams(release, tmp_path):
    config_file = write_config(tmp_path / "run.yaml", _config(release))
    run = tmp_path / "run"
    assert main(["train", str(config_file), "--out", str(run)]) == 0
    events = _events(run)
    losses = events.Scalars("train/loss")
    steps_per_epoch = len(losses) // 2
    assert [e.step for e in losses] == list(range(1, 2 * steps_per_epoch + 1))  # each step once
    auc = events.Scalars("valid/fusion/avg_auc")
    assert [e.step for e in auc] == [steps_per_epoch, 2 * steps_per_epoch]  # after each epoch
    assert all(0.0 <= e.value <= 1.0 for e in auc)
    assert {"train/lr", "train/pairs_per_s", "valid/primary/avg_acc", "final/test/final/avg_auc"} <= set(
        events.Tags()["scalars"]
    )
    final = json.loads((run / "metrics.json").read_text())["test"]["final"]["avg_auc"]
    assert events.Scalars("final/test/final/avg_auc")[-1].value == pytest.approx(final)
    from tensorboard.plugins.hparams import plugin_data_pb2

    content = events.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    hparams = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info.hparams
    assert hparams["train.lr"].number_value == pytest.approx(1e-3)


@pytest.mark.slow
def test_tracking_and_validation_do_not_change_the_trained_weights(release, tmp_path):
    quiet = train(_config(release, track=[], validate_every=0), tmp_path / "quiet", evaluate=False)
    watched = train(_config(release, track=["tensorboard"]), tmp_path / "watched", evaluate=False)
    a, b = quiet.model.state_dict(), watched.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


@_needs("mlflow")
@pytest.mark.slow
def test_mlflow_run_has_params_and_metrics_and_a_resume_continues_it(release, tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    store = f"file:{tmp_path / 'mlruns'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 wants the opt-in for file: stores
    config_file = write_config(tmp_path / "run.yaml", _config(release, epochs=1, swa={"epochs": 0}))
    run = tmp_path / "run"
    assert main(["train", str(config_file), "--out", str(run), "--track", "mlflow", "--no-eval"]) == 0
    run_id = json.loads((run / TRACKING_FILE).read_text())["mlflow"]["run_id"]
    # Extend the finished run by an epoch: the same MLflow run goes on from the next step.
    args = ["train", str(config_file), "--out", str(run), "--resume", "--epochs", "2", "--track", "mlflow"]
    assert main([*args, "--allow-change", "train.epochs"]) == 0
    assert json.loads((run / TRACKING_FILE).read_text())["mlflow"]["run_id"] == run_id
    client = MlflowClient(store)
    mlrun = client.get_run(run_id)
    assert float(mlrun.data.params["train.lr"]) == pytest.approx(1e-3)
    assert mlrun.info.status == "FINISHED"
    steps = [m.step for m in client.get_metric_history(run_id, "train/loss")]
    assert steps == [1, 2, 3, 4]  # two epochs of two steps, each step once
    assert "valid/fusion/avg_auc" in mlrun.data.metrics and "final/test/final/avg_auc" in mlrun.data.metrics
    artifacts = {a.path for a in client.list_artifacts(run_id)}
    assert {"model", "report.html"} <= artifacts


@_needs("wandb")
@pytest.mark.slow
def test_wandb_works_offline_and_a_resume_continues_the_same_run(release, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    config = _config(release, epochs=1, track=["wandb"], swa={"epochs": 0})
    run = tmp_path / "run"
    train(config, run, evaluate=False)
    run_id = json.loads((run / TRACKING_FILE).read_text())["wandb"]["run_id"]
    longer = {**config, "train": {**config["train"], "epochs": 2}}
    train(longer, run, resume=True, allow_changes=["train.epochs"], evaluate=False)
    offline = sorted((run / "wandb").glob("offline-run-*"))
    assert len(offline) == 2 and all(d.name.endswith(run_id) for d in offline)
    assert all((d / f"run-{run_id}.wandb").stat().st_size > 0 for d in offline)


class _Broken(Tracker):
    name = "broken"

    def start(self, run_dir, config, *, state, first_step):
        raise ConnectionError("no tracking server at http://localhost:5000")


class _Flaky(Tracker):
    name = "flaky"
    calls = 0

    def log_metrics(self, values, step):
        type(self).calls += 1
        raise OSError("disk quota exceeded")


class _TrackerPlugin:
    @staticmethod
    @mmfuse.hookimpl
    def register_trackers(register):
        register("broken", _Broken)
        register("flaky", _Flaky)


def test_a_tracker_that_fails_is_one_warning_line_and_training_goes_on(release, tmp_path, capfd):
    name = mmfuse.register_plugin(_TrackerPlugin, name="test-trackers")
    try:
        config = _config(release, track=["broken", "flaky"])
        result = train(config, tmp_path / "run", evaluate=False)
    finally:
        mmfuse.unregister_plugin(name)
    assert (tmp_path / "run" / "model").is_dir() and len(result.history) == 2
    warnings = [line for line in capfd.readouterr().err.splitlines() if line.startswith("warning: tracker")]
    assert warnings == [
        "warning: tracker 'broken' could not start (ConnectionError: no tracking server at "
        "http://localhost:5000); training goes on",
        "warning: tracker 'flaky' failed in log_metrics and is switched off for this run "
        "(OSError: disk quota exceeded); training goes on",
    ]
    assert _Flaky.calls == 1


def test_a_failing_validation_is_one_warning_line_and_training_goes_on(release, tmp_path, capfd):
    from mmfuse.errors import DataError
    from mmfuse.training.trainer import RunEvaluator
    from mmfuse.training.trainer import train as train_with

    def validation(model, config, *, device):
        raise DataError("the valid split lists no case")

    evaluator = RunEvaluator(validation=validation)  # validates for the trackers, evaluates nothing
    result = train_with(_config(release, epochs=3), tmp_path / "run", evaluator=evaluator)
    assert len(result.history) == 3 and (tmp_path / "run" / "model").is_dir()
    warnings = [line for line in capfd.readouterr().err.splitlines() if line.startswith("warning:")]
    assert warnings == [
        "warning: validation for the trackers failed (DataError: the valid split lists no case); it is "
        "switched off for this run, training goes on"
    ]
