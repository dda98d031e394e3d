"""Your own paired dataset end to end: tasks from the data, resolved run paths, evaluate/export keep its schema."""

from __future__ import annotations

import json
import os
import shutil

import pytest
import yaml
from test_training_fixtures import make_paired_csv, make_release, tiny_config, write_config

from mmfuse.cli import main
from mmfuse.hub import from_pretrained


@pytest.fixture(scope="module")
def own_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("own")
    data = make_paired_csv(make_release(tmp / "release"), tmp / "my_data", schema=True)
    config = tiny_config(data, train={"epochs": 2})
    config["model"].pop("tasks", None)  # the config says nothing about tasks
    config["data"].update(format="paired_csv", schema=str(data / "schema.yaml"))
    config_file = write_config(tmp / "run.yaml", config)
    previous = os.getcwd()
    os.chdir(tmp)  # relative paths in the config, as a user writes them
    try:
        config["data"].update(root="my_data", schema="my_data/schema.yaml")
        write_config(config_file, config)
        assert main(["train", "run.yaml", "--out", "run", "--no-eval"]) == 0
    finally:
        os.chdir(previous)
    return tmp, data


@pytest.mark.slow
def test_model_takes_its_tasks_from_the_data(own_run):
    tmp, _ = own_run
    model = from_pretrained(tmp / "run" / "model")
    assert [(t.name, t.classes) for t in model.tasks] == [("GRADE", ("low", "high"))]
    stored = yaml.safe_load((tmp / "run" / "config.yaml").read_text())
    assert stored["model"]["tasks"] == [{"name": "GRADE", "classes": ["low", "high"]}]


@pytest.mark.slow
def test_run_config_stores_resolved_paths(own_run):
    tmp, data = own_run
    stored = yaml.safe_load((tmp / "run" / "config.yaml").read_text())
    assert stored["data"]["root"] == str(data.resolve())
    assert stored["data"]["schema"] == str((data / "schema.yaml").resolve())


@pytest.mark.slow
def test_evaluate_with_data_elsewhere_keeps_the_runs_format_and_schema(own_run, tmp_path, capsys):
    tmp, data = own_run
    moved = shutil.copytree(data, tmp_path / "copy")
    # from another directory: the run's stored paths are absolute
    assert main(["evaluate", str(tmp / "run"), "--data", str(moved), "--split", "test", "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert set(metrics["test"]["final"]["tasks"]) == {"GRADE"}


@pytest.mark.slow
def test_export_accuracy_uses_the_runs_schema(own_run, tmp_path, capsys):
    tmp, data = own_run
    out = tmp_path / "m.onnx"
    assert main(["export", str(tmp / "run"), "--onnx", str(out), "--data", str(data), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report["accuracy"]["onnxruntime"]) == {"GRADE"}


def test_explicit_tasks_in_the_config_win(tmp_path):
    from mmfuse.training.trainer import Trainer

    data = make_paired_csv(make_release(tmp_path / "release", cases=20), tmp_path / "d", schema=True)
    config = tiny_config(data)
    config["data"].update(format="paired_csv", schema=str(data / "schema.yaml"))
    config["model"]["tasks"] = [{"name": "GRADE", "classes": ["low", "high"]}]
    trainer = Trainer(config, tmp_path / "run")
    assert [t.name for t in trainer.model.tasks] == ["GRADE"]
