"""Launchers: a study's runs inline, ``--jobs`` at once, or as submitit jobs; a failure never stops the others."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from test_training_fixtures import make_release, tiny_config, write_config

from mmfuse.cli import main
from mmfuse.errors import UsageError
from mmfuse.training import repeats, trainer
from mmfuse.training.launch import (
    LocalLauncher,
    RunsFailedError,
    RunSpec,
    SlurmLauncher,
    launch,
    make_launcher,
    parse_launcher_options,
)

needs_submitit = pytest.mark.skipif(
    importlib.util.find_spec("submitit") is None, reason="submitit is not installed (pip install submitit)"
)
QUICK = {"tta": False, "plots": False, "bootstrap": {"resamples": 0}, "temperature_scaling": False}


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    return make_release(tmp_path_factory.mktemp("launch") / "derm7pt", cases=24, size=36)


def _config(release, **train):
    options = {"epochs": 1, "swa": {"epochs": 0}, "track": [], **train}
    return tiny_config(release, train=options, evaluation=QUICK)


def test_a_failed_seed_is_named_while_the_others_finish_and_no_summary_is_written(tmp_path, monkeypatch):
    trained = []

    def fake_train(config, out, **options):
        if Path(out).name == "seed_1":
            raise RuntimeError("CUDA out of memory")
        trained.append(Path(out).name)
        return SimpleNamespace(metrics={"valid": {}})

    monkeypatch.setattr(trainer, "train", fake_train)
    with pytest.raises(
        RunsFailedError, match=r"1 of 3 seeds failed \(seed_1: RuntimeError: CUDA out of memory\)"
    ):
        repeats.run_seeds({"train": {}}, tmp_path, [0, 1, 2])
    assert trained == ["seed_0", "seed_2"]
    assert not (tmp_path / repeats.SUMMARY_JSON).exists()  # the summary waits for every seed


def test_launcher_options_are_parsed_and_checked(monkeypatch):
    assert parse_launcher_options(["partition=gpu", "timeout_min=600", "gpus_per_node=1"]) == {
        "partition": "gpu",
        "timeout_min": 600,
        "gpus_per_node": 1,
    }
    with pytest.raises(UsageError, match="KEY=VALUE"):
        parse_launcher_options(["partition"])
    with pytest.raises(UsageError, match="--jobs and --launcher-option need --launcher local or slurm"):
        make_launcher("inline", jobs=2)
    with pytest.raises(UsageError, match="positive integer"):
        make_launcher("local", jobs=0)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr("mmfuse.threads.usable_cores", lambda: 16)
    assert LocalLauncher(4).slot_env(3)["OMP_NUM_THREADS"] == "4"  # the cores split between the jobs


@needs_submitit
def test_slurm_options_take_their_prefix_and_unknown_ones_are_refused(tmp_path):
    launcher = SlurmLauncher({"cluster": "local", "partition": "gpu", "timeout_min": 60})
    assert launcher.parameters == {"slurm_partition": "gpu", "timeout_min": 60}
    launcher.executor(tmp_path)  # submitit accepts them
    with pytest.raises(UsageError, match="--launcher-option: .*'partishun'"):
        SlurmLauncher({"cluster": "local", "partishun": "gpu"}).executor(tmp_path)


@pytest.mark.slow
def test_local_jobs_train_in_parallel_processes_and_a_failing_run_is_reported(release, tmp_path, capfd):
    good = _config(release)
    broken = {**good, "data": {**good["data"], "root": str(tmp_path / "no-such-release")}}
    specs = [
        RunSpec("a", good, tmp_path / "a"),
        RunSpec("broken", broken, tmp_path / "broken"),
        RunSpec("b", {**good, "train": {**good["train"], "seed": 1}}, tmp_path / "b"),
    ]
    outcome = launch(specs, make_launcher("local", jobs=2), folder=tmp_path)
    assert set(outcome.metrics) == {"a", "b"} and set(outcome.failures) == {"broken"}
    assert "no-such-release" in outcome.failures["broken"]
    assert (tmp_path / "a" / "model").is_dir() and (tmp_path / "b" / "model").is_dir()
    err = capfd.readouterr().err
    assert "failed   broken: " in err and "finished a" in err and "finished b" in err
    assert "epoch 1/1" in (tmp_path / "launcher" / "a.log").read_text()  # each run's output in its log


@needs_submitit
@pytest.mark.slow
def test_seeds_finish_as_submitit_jobs_and_a_rerun_keeps_them(release, tmp_path, capfd):
    config_file = write_config(tmp_path / "run.yaml", _config(release))
    out = tmp_path / "study"
    args = ["train", str(config_file), "--out", str(out), "--seeds", "0,1"]
    slurm = [
        "--launcher",
        "slurm",
        "--launcher-option",
        "cluster=local",
        "--launcher-option",
        "timeout_min=10",
    ]
    assert main([*args, *slurm]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["seeds"] == [0, 1] and summary["test"]["final"]["avg_auc"]["n"] == 2
    err = capfd.readouterr().err
    assert err.count("finished ") == 2 and "(job " in err
    assert list((out / "submitit").glob("*_log.out"))  # submitit's own job logs
    stamp = (out / "seed_0" / "metrics.json").stat().st_mtime_ns
    assert main([*args, "--resume", *slurm]) == 0  # finished seeds are not trained again
    assert (out / "seed_0" / "metrics.json").stat().st_mtime_ns == stamp
    assert "started" not in capfd.readouterr().err


def test_launcher_mistakes_are_one_line_errors(release, tmp_path, capsys):
    config_file = write_config(tmp_path / "run.yaml", _config(release))
    base = ["train", str(config_file), "--out", str(tmp_path / "out")]
    for extra, message in (
        (
            ["--seeds", "0,1", "--launcher", "sbatch"],
            "unknown launcher 'sbatch'; choose from inline, local, slurm",
        ),
        (["--jobs", "2"], "--launcher, --jobs and --launcher-option apply to --seeds and --folds (many runs)"),
        (["--track", "tensorbord"], "--track: unknown tracker 'tensorbord'; available: "),
    ):
        assert main([*base, *extra]) == 1
        err = capsys.readouterr().err
        assert err.startswith(f"mmfuse train: error: {message}") and err.count("\n") == 1, err
    assert not (tmp_path / "out").exists()
