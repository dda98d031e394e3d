"""Resume and faults: SIGKILL then --resume gives the same weights bit for bit; NaN stops cleanly; bad --out fails first."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from test_training_fixtures import make_release, tiny_config, write_config

from mmfuse.errors import CheckpointError
from mmfuse.pipeline import train
from mmfuse.training import NonFiniteLossError, RunDirError
from mmfuse.training import checkpoint as ckpt
from mmfuse.training import trainer as trainer_module
from mmfuse.training.schedule import lr_factor

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    return make_release(tmp_path_factory.mktemp("release") / "derm7pt")


def _equal_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.slow
def test_sigkill_then_resume_equals_an_uninterrupted_run(release, tmp_path):
    config = tiny_config(release, train={"epochs": 6, "swa": {"epochs": 4, "anneal_epochs": 2}})
    config_file = write_config(tmp_path / "run.yaml", config)
    killed = tmp_path / "killed"
    process = subprocess.Popen(
        [sys.executable, "-m", "mmfuse", "train", str(config_file), "--out", str(killed), "--no-eval"],
        cwd=REPO,
        # Bit-exactness on CPU holds for the same number of threads (reductions split by thread).
        env={**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": str(torch.get_num_threads())},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    try:
        # Kill as soon as the second checkpoint lands: mid-way through a later epoch (SWA already running).
        while not ckpt.checkpoint_dir(killed / "checkpoints", 2).is_dir():
            assert process.poll() is None, process.stderr.read().decode()
            assert time.monotonic() < deadline, "the training subprocess never wrote its second checkpoint"
            time.sleep(0.005)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait()
    interrupted_at = ckpt.latest(killed / "checkpoints")
    assert interrupted_at is not None and not (killed / "model").exists()

    resumed = train(config, killed, resume=True, evaluate=False)
    uninterrupted = train(config, tmp_path / "straight", evaluate=False)
    assert _equal_weights(resumed.model, uninterrupted.model)
    assert [row["loss"] for row in resumed.history] == [row["loss"] for row in uninterrupted.history]
    assert len(resumed.history) == 6


def test_resume_after_the_last_epoch_only_finishes(release, tmp_path):
    config = tiny_config(release, train={"epochs": 2, "swa": {"epochs": 1}})
    first = train(config, tmp_path / "run", evaluate=False)
    assert not (tmp_path / "run" / ".lock").exists()
    again = train(config, tmp_path / "run", resume=True, evaluate=False)
    assert _equal_weights(first.model, again.model)
    assert not (tmp_path / "run" / ".lock").exists()  # a finished run's resume leaves no lock behind


def test_leftover_of_a_killed_checkpoint_write_is_ignored(tmp_path):
    root = tmp_path / "checkpoints"
    ckpt.save(root, 1, tensors={"model": {"w": torch.ones(2)}}, state={"epoch": 1})
    (root / ".epoch_0002.tmp").mkdir()
    (root / ".epoch_0002.tmp" / "model.safetensors").write_bytes(b"half a file")
    assert ckpt.latest(root) == ckpt.checkpoint_dir(root, 1)
    ckpt.save(root, 2, tensors={"model": {"w": torch.zeros(2)}}, state={"epoch": 2}, keep=1)
    assert ckpt.latest(root) == ckpt.checkpoint_dir(root, 2)
    assert sorted(p.name for p in root.iterdir()) == ["epoch_0002"]
    tensors, state = ckpt.load(ckpt.latest(root))
    assert torch.equal(tensors["model"]["w"], torch.zeros(2)) and state == {"epoch": 2}


def test_rng_and_optimizer_states_round_trip_through_json(tmp_path):
    torch.manual_seed(3)
    states = json.loads(json.dumps(ckpt.rng_states()))
    expected = torch.rand(5)
    torch.rand(100)
    ckpt.set_rng_states(states)
    assert torch.equal(torch.rand(5), expected)
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
    model(torch.ones(1, 3)).sum().backward()
    optimizer.step()
    tensors, meta = ckpt.split_optimizer_state(optimizer.state_dict())
    restored = ckpt.join_optimizer_state(tensors, json.loads(json.dumps(meta)))
    fresh = torch.optim.Adam(model.parameters(), lr=0.5)
    fresh.load_state_dict(restored)
    assert fresh.param_groups[0]["lr"] == 0.1
    for key, value in optimizer.state_dict()["state"][0].items():
        assert torch.equal(fresh.state_dict()["state"][0][key], value)


def test_nan_loss_stops_with_a_clear_message_and_keeps_the_last_good_checkpoint(
    release, tmp_path, monkeypatch
):
    real_loss, real_epoch = trainer_module.multitask_loss, trainer_module.Trainer._train_epoch
    current = {"epoch": 0}

    def tracked_epoch(self, epoch):
        current["epoch"] = epoch
        return real_epoch(self, epoch)

    def poisoned(*args, **kwargs):
        loss, parts = real_loss(*args, **kwargs)
        return (loss * float("nan"), parts) if current["epoch"] == 1 else (loss, parts)

    monkeypatch.setattr(trainer_module.Trainer, "_train_epoch", tracked_epoch)
    monkeypatch.setattr(trainer_module, "multitask_loss", poisoned)
    config = tiny_config(release, train={"epochs": 3})
    run = tmp_path / "run"
    with pytest.raises(
        NonFiniteLossError,
        match=r"loss became nan at epoch 2, step 1.*epoch_0001 \(epoch 1\).*--resume --allow-change train\.lr",
    ):
        train(config, run, evaluate=False)
    assert ckpt.latest(run / "checkpoints") == ckpt.checkpoint_dir(run / "checkpoints", 1)
    _, state = ckpt.load(ckpt.latest(run / "checkpoints"))
    assert state["epoch"] == 1 and all(v == v for v in state["history"][0].values())
    assert not (run / "model").exists()


def test_unwritable_out_fails_before_training(release, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(RunDirError, match="cannot create --out"):
        train(tiny_config(release), blocker / "run", evaluate=False)


def test_full_disk_fails_before_training(release, tmp_path, monkeypatch):
    import shutil

    from mmfuse.training import rundir

    monkeypatch.setattr(
        rundir.shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**9, 10**9, 1024)
    )
    with pytest.raises(RunDirError, match="MiB free but this run needs"):
        train(tiny_config(release), tmp_path / "run", evaluate=False)
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_existing_run_needs_resume_and_the_same_config(release, tmp_path):
    config = tiny_config(release, train={"epochs": 1, "swa": {"epochs": 0}})
    train(config, tmp_path / "run", evaluate=False)
    with pytest.raises(RunDirError, match="already holds a run"):
        train(config, tmp_path / "run", evaluate=False)
    changed = tiny_config(release, train={"epochs": 1, "swa": {"epochs": 0}, "lr": 0.5})
    with pytest.raises(RunDirError, match=r"train\.lr: 0\.001 in the run, 0\.5 given"):
        train(changed, tmp_path / "run", resume=True, evaluate=False)


def test_an_existing_run_is_refused_before_the_dataset_is_read(release, tmp_path, monkeypatch):
    import mmfuse.data

    config = tiny_config(release, train={"epochs": 1, "swa": {"epochs": 0}})
    train(config, tmp_path / "run", evaluate=False)

    def must_not_read(*args, **kwargs):
        raise AssertionError("the dataset was read before --out was checked")

    monkeypatch.setattr(mmfuse.data, "load_table", must_not_read)
    with pytest.raises(RunDirError, match="already holds a run"):
        train(config, tmp_path / "run", evaluate=False)


def test_a_second_training_into_a_locked_run_folder_fails_at_once(release, tmp_path):
    from mmfuse.training.rundir import RunLock

    config = tiny_config(release, train={"epochs": 1, "swa": {"epochs": 0}})
    run = tmp_path / "run"
    run.mkdir()
    other = RunLock(run)  # what a concurrent `mmfuse train --out run` holds while it runs
    try:
        with pytest.raises(RunDirError, match=r"being written by another training \(pid \d+\)"):
            train(config, run, evaluate=False)
        assert not (run / "config.yaml").exists()  # the loser wrote nothing
    finally:
        other.release()
    assert train(config, run, evaluate=False).history


def test_a_failed_start_leaves_the_run_folder_reusable(release, tmp_path):
    config = tiny_config(release, train={"epochs": 1, "swa": {"epochs": 0}})
    bad = {**config, "data": {**config["data"], "root": str(tmp_path / "no-such-release")}}
    run = tmp_path / "run"
    with pytest.raises(Exception, match="no-such-release"):
        train(bad, run, evaluate=False)
    assert not (run / "config.yaml").exists() and not (run / "checkpoints").exists()
    assert train(config, run, evaluate=False).history  # no "already holds a run", no --resume needed


def test_resume_allows_explicit_recovery_changes_and_refuses_the_rest(release, tmp_path):
    run = tmp_path / "run"
    first = tiny_config(release, train={"epochs": 2, "swa": {"epochs": 0}})
    train(first, run, evaluate=False)
    recovered = tiny_config(release, train={"epochs": 3, "swa": {"epochs": 0}, "lr": 1e-4})
    with pytest.raises(RunDirError, match=r"--allow-change train\.epochs --allow-change train\.lr"):
        train(recovered, run, resume=True, evaluate=False)
    with pytest.raises(RunDirError, match=r"only train\.lr.*may change"):
        train(recovered, run, resume=True, evaluate=False, allow_changes=["model.primary"])
    bigger = tiny_config(release, model={"primary": "test_resnet"}, train=recovered["train"])
    with pytest.raises(RunDirError, match=r"model\.primary: 'test_convnext' in the run, 'test_resnet' given"):
        train(bigger, run, resume=True, evaluate=False, allow_changes=["train.lr", "train.epochs"])
    result = train(recovered, run, resume=True, evaluate=False, allow_changes=["train.lr", "train.epochs"])
    assert [row["epoch"] for row in result.history] == [1, 2, 3]
    assert result.history[-1]["lr"] == pytest.approx(1e-4 * lr_factor(2, recovered["train"]))
    stored = (run / "config.yaml").read_text()
    assert "lr: 0.0001" in stored and "epochs: 3" in stored
    log = (run / "config_changes.log").read_text()
    assert "epoch_0002 train.lr: 0.001 -> 0.0001" in log and "train.epochs: 2 -> 3" in log


def test_seeds_resume_the_unfinished_runs_with_the_allowed_changes(tmp_path, monkeypatch):
    """`mmfuse train CFG --seeds 0,1 --resume --allow-change train.lr`: the recovery reaches each seed's run."""
    from types import SimpleNamespace

    from mmfuse.training import repeats

    calls = []

    def record(config, out, **options):
        calls.append((Path(out).name, options["resume"], tuple(options["allow_changes"])))
        return SimpleNamespace(metrics=None)  # as on a non-zero torchrun rank: no summary to write

    monkeypatch.setattr(trainer_module, "train", record)
    (tmp_path / "seed_0").mkdir()  # started before, not finished
    repeats.run_seeds({"train": {}}, tmp_path, [0, 1], resume=True, allow_changes=["train.lr"])
    assert calls == [("seed_0", True, ("train.lr",)), ("seed_1", False, ())]


def test_a_run_of_the_old_default_architecture_is_told_its_new_preset_name(release, tmp_path):
    """Runs saved `preset: ammfm-swin` when that name built today's ammfm-swin-fast: --resume says how to go on."""
    import yaml

    run = tmp_path / "run"
    old = tiny_config(release, model={"preset": "ammfm-swin-fast"}, train={"epochs": 2, "swa": {"epochs": 0}})
    train(old, run, evaluate=False)
    stored = yaml.safe_load((run / "config.yaml").read_text())
    stored["model"]["preset"] = "ammfm-swin"  # what such a run's config.yaml says
    (run / "config.yaml").write_text(yaml.safe_dump(stored))
    again = {**old, "model": {**old["model"], "preset": "ammfm-swin"}, "train": {**old["train"], "epochs": 3}}
    with pytest.raises(CheckpointError, match=r"now named 'ammfm-swin-fast'.*Set model\.preset"):
        train(again, run, resume=True, evaluate=False, allow_changes=["train.epochs"])
    stored["model"]["preset"] = "ammfm-swin-fast"
    (run / "config.yaml").write_text(yaml.safe_dump(stored))
    fixed = {**again, "model": old["model"]}
    result = train(fixed, run, resume=True, evaluate=False, allow_changes=["train.epochs"])
    assert [row["epoch"] for row in result.history] == [1, 2, 3]
