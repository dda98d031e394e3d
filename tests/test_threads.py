"""The default CPU thread count: free cores, less DataLoader workers, never below one."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mmfuse.threads import auto_threads, choose_threads, parse_threads, set_threads
from mmfuse.training.config import RunConfigError, resolve


def test_idle_machine_uses_every_core():
    assert auto_threads(cores=8, load=0.2) == 8


def test_loaded_machine_leaves_busy_cores_alone():
    # The case: 2 cores, other jobs keep one busy -> one thread, not two fighting for one core.
    assert auto_threads(cores=2, load=1.1) == 1
    assert auto_threads(cores=2, load=6.0) == 1
    assert auto_threads(cores=16, load=5.4) == 11


def test_dataloader_workers_take_their_cores():
    assert auto_threads(num_workers=4, cores=8, load=0.0) == 4
    assert auto_threads(num_workers=8, cores=8, load=0.0) == 1


@given(st.integers(1, 256), st.floats(0, 1000), st.integers(0, 64))
def test_auto_threads_is_between_one_and_the_cores(cores, load, workers):
    assert 1 <= auto_threads(workers, cores=cores, load=load) <= cores


def test_explicit_setting_and_omp_env_win(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert choose_threads("auto").threads == 3
    assert choose_threads(2).threads == 2
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert choose_threads("auto").reason.startswith("auto:")


def test_set_threads_applies_to_torch():
    import torch

    before = torch.get_num_threads()
    try:
        assert set_threads(1).threads == 1
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="positive integer or 'auto'"):
        choose_threads(0)
    import argparse

    with pytest.raises(argparse.ArgumentTypeError):
        parse_threads("many")
    with pytest.raises(RunConfigError, match="train.threads"):
        resolve({"data": {"root": "x"}, "train": {"threads": -1}})
    assert resolve({"data": {"root": "x"}, "train": {"threads": 2}})["train"]["threads"] == 2
    assert resolve({"data": {"root": "x"}})["train"]["threads"] == "auto"


@pytest.mark.parametrize(
    "argv",
    [
        ["params", "--threads", "3"],
        ["compare", "run_a", "run_b", "--threads", "3"],
        ["explain", "run", "--primary", "p.jpg", "--out", "o", "--threads", "3"],
    ],
)
def test_long_commands_take_threads(argv, monkeypatch, tmp_path):
    """``--threads`` is applied before the command's work starts."""
    import mmfuse.threads
    from mmfuse.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "p.jpg").write_bytes(b"")

    def record(setting, **kwargs):
        raise SystemExit(f"threads {setting}")  # stop before the work: it is not what is tested

    monkeypatch.setattr(mmfuse.threads, "set_threads", record)
    with pytest.raises(SystemExit, match="threads 3"):
        main(argv)


def test_reproduce_passes_threads_to_every_run(capsys, tmp_path):
    from mmfuse.cli import main

    argv = ["reproduce", "table9", "--data", str(tmp_path), "--out", str(tmp_path / "o"), "--seeds", "0"]
    assert main([*argv, "--threads", "2", "--dry-run"]) == 0
    assert all("--threads=2" in line for line in capsys.readouterr().out.strip().splitlines())
