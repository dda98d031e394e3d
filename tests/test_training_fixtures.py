"""Tiny runs shared by the training, evaluation and CLI tests: a synthetic release and a config for it.

Models are timm's test backbones at 32 px, so a three-epoch run takes seconds on two CPU cores.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from mmfuse.training.config import resolve

TINY_CASES = 40
TINY_MODEL = {"primary": "test_convnext", "auxiliary": "test_efficientnet", "img_size": 32}


def make_release(root: Path, cases: int = TINY_CASES, size: int = 40, seed: int = 0) -> Path:
    from mmfuse.data.synth import synthesize

    synthesize(root, cases=cases, size=size, seed=seed)
    return root


def tiny_config(root: Path, **sections) -> dict:
    """A resolved run config for the tiny release; ``sections`` update each section's defaults."""
    config = {
        "model": dict(TINY_MODEL),
        "data": {"root": str(root)},
        "train": {
            "epochs": 3,
            "batch_size": 8,
            "lr": 1e-3,
            "swa": {"epochs": 2, "anneal_epochs": 1},
            "log_every": 1,
        },
        "evaluation": {"tta": False, "plots": False, "batch_size": 32},
    }
    for section, values in sections.items():
        config[section] = {**config.get(section, {}), **values}
    return resolve(config)


def write_config(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def test_tiny_config_is_a_valid_run_config(tmp_path):
    config = tiny_config(tmp_path, train={"epochs": 5})
    assert config["train"]["epochs"] == 5 and config["train"]["swa"]["epochs"] == 2
    assert config["model"]["primary"] == "test_convnext"
