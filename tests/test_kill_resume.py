"""Kills at any moment: SIGKILL `mmfuse train` mid-epoch, mid-checkpoint and mid-model-write, resume each time,
and the final weights equal an uninterrupted run's bit for bit (CPU).

The moments are drawn from a seeded generator (``MMFUSE_KILL_SEED`` picks another draw); the checkpoint and
model writes are slowed by tests/slow_writes.py, a wrapper around the CLI, never by the product.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from test_training_fixtures import make_release, tiny_config, write_config

from mmfuse.hub import from_pretrained
from mmfuse.pipeline import train
from mmfuse.training import checkpoint as ckpt

HERE = Path(__file__).resolve().parent
SEED = int(os.environ.get("MMFUSE_KILL_SEED", "14"))
EPOCHS = 6


def _env() -> dict:
    # Bit-exactness on CPU holds for the same number of threads (reductions split by thread).
    return {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": str(torch.get_num_threads())}


def _start(args: list[str], slow: tuple[str, Path] | None = None) -> subprocess.Popen:
    command = [sys.executable, "-m", "mmfuse", *args]
    if slow is not None:
        command = [sys.executable, str(HERE / "slow_writes.py"), slow[0], str(slow[1]), "--", *args]
    return subprocess.Popen(command, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _wait_for(process: subprocess.Popen, condition, what: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None:
            raise AssertionError(
                f"training exited ({process.returncode}) before {what}: {process.stderr.read()}"
            )
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


def _kill(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait()
    process.stderr.close()


def _epoch(run: Path) -> int:
    latest = ckpt.latest(run / "checkpoints")
    return int(latest.name.removeprefix(ckpt.PREFIX)) if latest else 0


def _assert_loadable(run: Path) -> None:
    """What a kill leaves is either a complete checkpoint or a leftover that is ignored."""
    latest = ckpt.latest(run / "checkpoints")
    if latest is not None:
        tensors, state = ckpt.load(latest)
        assert {"model", "swa", "optimizer"} <= set(tensors) and state["epoch"] == _epoch(run)


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    return make_release(tmp_path_factory.mktemp("release") / "derm7pt", cases=24, size=32)


@pytest.mark.slow
def test_killed_at_random_moments_then_resumed_equals_an_uninterrupted_run(release, tmp_path):
    rng = random.Random(SEED)
    config = tiny_config(release, train={"epochs": EPOCHS, "swa": {"epochs": 3, "anneal_epochs": 1}})
    config_file = write_config(tmp_path / "run.yaml", config)
    run = tmp_path / "killed"
    train_args = ["train", str(config_file), "--out", str(run), "--no-eval"]
    resume_args = [*train_args, "--resume"]
    moments = []

    # 1. A random moment of the first epochs (after the first checkpoint, possibly inside the next write).
    process = _start(train_args)
    _wait_for(process, lambda: _epoch(run) >= 1, "the first checkpoint")
    time.sleep(rng.uniform(0.0, 0.3))
    _kill(process)
    moments.append(f"random, after epoch {_epoch(run)}")
    _assert_loadable(run)

    # 2. Inside a checkpoint write: its first file is on disk, the rest is not, the rename has not happened.
    marker = tmp_path / "writing-checkpoint"
    before = _epoch(run)
    process = _start(resume_args, slow=("checkpoint", marker))
    _wait_for(process, marker.exists, "a checkpoint write")
    _kill(process)
    half = Path(marker.read_text()).parent
    assert half.name.startswith(".") and half.name.endswith(".tmp") and half.is_dir()
    assert _epoch(run) == before, "a half-written checkpoint was taken for a complete one"
    moments.append(f"inside the write of {half.name}")
    _assert_loadable(run)

    # 3. Another random moment, later in training (SWA epochs).
    process = _start(resume_args)
    _wait_for(process, lambda: _epoch(run) >= before + 1, "one more checkpoint")
    time.sleep(rng.uniform(0.0, 0.3))
    _kill(process)
    moments.append(f"random, after epoch {_epoch(run)}")
    _assert_loadable(run)

    # 4. Inside the final model write (every epoch done, model.safetensors half written).
    marker = tmp_path / "writing-model"
    process = _start(resume_args, slow=("model", marker))
    _wait_for(process, marker.exists, "the final model write")
    _kill(process)
    assert _epoch(run) == EPOCHS
    assert not (run / "model" / "model.safetensors").exists() or from_pretrained(run / "model")
    moments.append("inside the write of model.safetensors")

    resumed = subprocess.run(
        [sys.executable, "-m", "mmfuse", *resume_args], env=_env(), capture_output=True, text=True
    )
    assert resumed.returncode == 0, resumed.stderr
    straight = train(config, tmp_path / "straight", evaluate=False)
    expected = straight.model.state_dict()
    actual = from_pretrained(run / "model").state_dict()
    assert actual.keys() == expected.keys()
    different = [k for k in expected if not torch.equal(actual[k], expected[k])]
    assert not different, f"killed at {moments}: tensors differ: {different[:5]}"
    assert (run / "log.csv").read_text() == (tmp_path / "straight" / "log.csv").read_text() or _same_losses(
        run, tmp_path / "straight"
    )


def _same_losses(a: Path, b: Path) -> bool:
    import csv

    def losses(run: Path) -> list[str]:
        with open(run / "log.csv", newline="") as handle:
            return [row["loss"] for row in csv.DictReader(handle)]

    return losses(a) == losses(b)


@pytest.mark.slow
def test_a_killed_reproduce_keeps_finished_runs_and_resumes_the_killed_one(tmp_path):
    """SIGKILL `mmfuse reproduce` inside its second run; the rerun skips the first, resumes the second from its
    checkpoint, and ends with the weights and metrics of a reproduce that was never interrupted."""
    release = make_release(tmp_path / "data", cases=24, size=36)
    rows = ["aff-concat-swin", "ammfm-swin"]

    def reproduce(out: Path) -> subprocess.Popen:
        args = ["table6", "--quick", "--data", str(release), "--out", str(out), "--seeds", "0"]
        command = [
            sys.executable,
            str(HERE / "reproduce_tiny.py"),
            "3",
            "--",
            *args,
            "--only",
            ",".join(rows),
        ]
        return subprocess.Popen(
            command, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

    killed = tmp_path / "killed"
    first, second = (killed / "runs" / row / "seed_0" for row in rows)
    process = reproduce(killed)
    _wait_for(process, lambda: _epoch(second) >= 1, "the second run's first checkpoint")
    _kill(process)
    process.stdout.close()
    assert (first / "metrics.json").is_file() and not (second / "metrics.json").exists()
    finished = (first / "metrics.json").stat().st_mtime_ns

    rerun = reproduce(killed)
    out, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err
    assert f"done     {rows[0]} seed 0" in out and f"resume   {rows[1]} seed 0" in out
    assert (first / "metrics.json").stat().st_mtime_ns == finished  # not trained again

    straight = reproduce(tmp_path / "straight")
    straight.communicate(timeout=300)
    assert straight.returncode == 0
    reference = tmp_path / "straight" / "runs" / rows[1] / "seed_0"
    expected = from_pretrained(reference / "model").state_dict()
    actual = from_pretrained(second / "model").state_dict()
    assert [k for k in expected if not torch.equal(actual[k], expected[k])] == []
    assert (second / "metrics.json").read_text() == (reference / "metrics.json").read_text()
