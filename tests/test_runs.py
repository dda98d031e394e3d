"""RunDir: the files of a training run folder, found where training and evaluation wrote them."""

from __future__ import annotations

import csv

import pytest
from test_training_fixtures import make_paired_csv, make_release, tiny_config, write_config

from mmfuse.cli import main
from mmfuse.errors import RunDirError
from mmfuse.runs import RunDir


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A trained, evaluated single-task run (a single task gets a submission file too)."""
    tmp = tmp_path_factory.mktemp("runs")
    data = make_paired_csv(make_release(tmp / "release"), tmp / "my_data", schema=True)
    config = tiny_config(
        data, train={"epochs": 1, "swa": {"epochs": 0}}, evaluation={"bootstrap": {"resamples": 0}}
    )
    config["model"].pop("tasks", None)
    config["data"].update(format="paired_csv", schema=str(data / "schema.yaml"))
    assert main(["train", str(write_config(tmp / "run.yaml", config)), "--out", str(tmp / "run")]) == 0
    return tmp / "run"


@pytest.mark.slow
def test_finds_every_file_of_a_trained_run_and_loads_its_model(run):
    found = RunDir(run)
    assert RunDir.named_by(str(run)).path == run and RunDir.named_by(f"local-dir:{run}").path == run
    files = [
        found.config_file,
        found.log_file,
        found.splits_file,
        found.metrics_file,
        found.predictions_file("test"),
        found.submission_file("test"),
    ]
    assert all(path.is_file() and path.parent == run for path in files), files
    assert found.model_dir.is_dir()
    assert found.read_config()["data"]["format"] == "paired_csv"
    assert set(found.read_metrics()) >= {"test", "head_weights", "data"}
    with found.predictions_file("test").open(newline="") as fh:
        assert len(list(csv.DictReader(fh))) == found.read_metrics()["data"]["test"]["cases"]
    model = found.load_model()
    assert [task.name for task in model.tasks] == ["GRADE"]


def test_refuses_a_folder_that_holds_no_run(tmp_path):
    with pytest.raises(RunDirError, match="is not a training run directory"):
        RunDir(tmp_path)
    with pytest.raises(RunDirError, match="run directory not found"):
        RunDir(tmp_path / "nope")
    assert RunDir.named_by(tmp_path) is None  # not a run: the argument is a model folder or a Hub name
    assert RunDir.named_by("ammfm-swin") is None  # a published name never means a local folder
