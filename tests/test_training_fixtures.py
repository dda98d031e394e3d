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


PAIRED_SCHEMA = {
    "table": "cases.csv",
    "image_dir": "images",
    "primary": "main_image",
    "auxiliary": "second_image",
    "case_id": "case",
    "split": "split",
    "metadata": [
        "age",
        {"column": "sex", "type": "categorical"},
        {"column": "site", "categories": ["head", "trunk", "limb"]},
    ],
    "tasks": [
        {"name": "GRADE", "column": "grade", "classes": ["low", "high"], "map": {"lo": "low", "hi": "high"}}
    ],
}


def make_paired_csv(release: Path, out: Path, *, schema: bool = False) -> Path:
    """The release's images as a paired CSV dataset with a task of its own (GRADE: low/high).

    The columns are those of the schema in docs/data.md; ``schema=True`` also writes that schema.
    """
    import csv
    import shutil

    from mmfuse.data.formats.derm7pt import load_release

    table = load_release(release)
    images = out / "images"
    images.mkdir(parents=True)
    rows = []
    for split in ("train", "valid", "test"):
        for i, record in enumerate(table.split_records(split)):
            main = f"{record.case_id}_main.jpg"
            shutil.copyfile(record.primary_path, images / main)
            second = ""
            if record.auxiliary_path is not None and i % 7 != 3:  # a few cases lack the second image
                second = f"{record.case_id}_second.jpg"
                shutil.copyfile(record.auxiliary_path, images / second)
            grade = "hi" if record.labels["DIAG"] in ("MEL", "BCC") or i % 3 == 0 else "lo"
            rows.append(
                {
                    "case": record.case_id,
                    "main_image": main,
                    "second_image": second,
                    "split": split,
                    "grade": grade,
                    "age": 40 + i % 30,
                    "sex": "fm"[i % 2],
                    "site": ("head", "trunk", "limb")[i % 3],
                }
            )
    with (out / "cases.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    if schema:
        (out / "schema.yaml").write_text(yaml.safe_dump(PAIRED_SCHEMA, sort_keys=False))
    return out


def write_config(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def test_tiny_config_is_a_valid_run_config(tmp_path):
    config = tiny_config(tmp_path, train={"epochs": 5})
    assert config["train"]["epochs"] == 5 and config["train"]["swa"]["epochs"] == 2
    assert config["model"]["primary"] == "test_convnext"
