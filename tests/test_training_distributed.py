"""torchrun: two CPU processes with gloo train one model; rank 0 writes the run directory."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_training_fixtures import make_release, tiny_config, write_config

from mmfuse.hub import from_pretrained
from mmfuse.training.batches import per_rank_batch_size
from mmfuse.training.distributed import DistContext

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_two_process_gloo_run_writes_one_complete_run_directory(tmp_path):
    release = make_release(tmp_path / "derm7pt")
    config = tiny_config(release, train={"epochs": 2, "swa": {"epochs": 1}}, evaluation={"splits": ["test"]})
    config_file = write_config(tmp_path / "run.yaml", config)
    run = tmp_path / "run"
    # `torchrun` is `python -m torch.distributed.run`; the module form needs no script on PATH.
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    launcher = [torchrun] if torchrun else [sys.executable, "-m", "torch.distributed.run"]
    completed = subprocess.run(
        [
            *launcher,
            "--standalone",
            "--nproc_per_node=2",
            "-m",
            "mmfuse",
            "train",
            str(config_file),
            "--out",
            str(run),
        ],
        cwd=REPO,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert completed.stdout.count("run directory:") == 1  # rank 0 alone reports
    log = (run / "log.csv").read_text().splitlines()
    assert len(log) == 3  # header and two epochs, written once
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics) == {"test", "head_weights", "data"}
    assert set(metrics["test"]) == {"primary", "auxiliary", "fusion", "final"}
    model = from_pretrained(run / "model")
    assert model.head_weights_dict == pytest.approx(metrics["head_weights"], abs=1e-6)
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["epoch_0002"]


def test_batch_size_is_global_and_must_split_evenly():
    assert per_rank_batch_size(24, DistContext(rank=0, world_size=2)) == 12
    with pytest.raises(ValueError, match="not divisible by the 5 torchrun processes"):
        per_rank_batch_size(24, DistContext(rank=0, world_size=5))
