"""Fine-tuning: start from a trained AMMFM and learn another dataset's tasks with new heads.

The encoders and the fusion blocks keep what they learnt; only the heads are new. No AMMFM weights are
published yet (training them needs the Derm7pt images and a GPU), so this example first trains a small
source model on a synthetic Derm7pt-format release; with published weights, SOURCE is "ammfm-swin".

    python examples/finetune.py [WORKDIR]
"""

from __future__ import annotations

import csv
import shutil
import sys
import tempfile
from pathlib import Path

import torch
import yaml

import mmfuse
from mmfuse.data.formats.derm7pt import load_release
from mmfuse.data.synth import synthesize
from mmfuse.pipeline import train
from mmfuse.training import resolve

SMALL = {
    "primary": "test_convnext",
    "auxiliary": "test_efficientnet",
    "img_size": 32,
}  # timm's tiny backbones
SHORT = {"epochs": 2, "batch_size": 8, "lr": 1e-3, "swa": {"epochs": 1, "anneal_epochs": 1}}
GRADE = [{"name": "GRADE", "classes": ["low", "high"]}]


def source_model(workdir: Path) -> Path:
    """A small AMMFM trained on the eight Derm7pt tasks: the run directory `mmfuse train` leaves."""
    synthesize(workdir / "derm7pt", cases=40, size=48, seed=0)
    config = resolve(
        {
            "model": {"preset": "ammfm-swin", **SMALL},
            "data": {"root": str(workdir / "derm7pt")},
            "train": SHORT,
            "evaluation": {"tta": False, "plots": False},
        }
    )
    train(config, workdir / "source", evaluate=False)
    return workdir / "source"


def new_dataset(workdir: Path) -> Path:
    """Another paired dataset with a task of its own (GRADE), as a CSV table and a YAML schema."""
    release = load_release(workdir / "derm7pt")
    root = workdir / "grading"
    (root / "images").mkdir(parents=True)
    rows = []
    for split in ("train", "valid", "test"):
        for i, record in enumerate(release.split_records(split)):
            names = []
            for suffix, path in (("a", record.primary_path), ("b", record.auxiliary_path)):
                names.append(
                    f"{record.case_id}_{suffix}.jpg" if path is not None else ""
                )  # "": no second image
                if path is not None:
                    shutil.copyfile(path, root / "images" / names[-1])
            grade = "high" if record.labels["DIAG"] == "MEL" or i % 2 else "low"
            rows.append([record.case_id, *names, split, grade])
    with (root / "cases.csv").open("w", newline="") as fh:
        csv.writer(fh).writerows([["case", "first", "second", "split", "grade"], *rows])
    schema = {
        "table": "cases.csv",
        "image_dir": "images",
        "primary": "first",
        "auxiliary": "second",
        "case_id": "case",
        "split": "split",
        "tasks": [{"name": "GRADE", "column": "grade", "classes": ["low", "high"]}],
    }
    (root / "schema.yaml").write_text(yaml.safe_dump(schema, sort_keys=False))
    return root


def main(workdir: Path) -> None:
    source = source_model(workdir)
    data = new_dataset(workdir)

    # In Python: the saved model with new heads for GRADE; encoders and fusion blocks as trained.
    trained = mmfuse.from_pretrained(source / "model")
    model = mmfuse.from_pretrained(source / "model", tasks=GRADE)  # or: trained.reset_heads(GRADE)
    same = all(
        torch.equal(a, b)
        for a, b in zip(
            trained.primary_encoder.state_dict().values(),
            model.primary_encoder.state_dict().values(),
            strict=True,
        )
    )
    print(
        f"tasks {[t.name for t in trained.tasks]} -> {[t.name for t in model.tasks]}; encoders kept: {same}"
    )

    # With the trainer: `model.from_pretrained` names the source (a run, a model folder or a Hub name);
    # the tasks come from the new dataset. In YAML:  model: {from_pretrained: runs/source}
    config = resolve(
        {
            "model": {"from_pretrained": str(source)},
            "data": {"format": "paired_csv", "root": str(data), "schema": str(data / "schema.yaml")},
            "train": SHORT,
            "evaluation": {"tta": False, "plots": False},
        }
    )
    result = train(config, workdir / "finetuned")
    final = result.metrics["test"]["final"]
    print(f"fine-tuned on GRADE: test AUC {final['avg_auc']:.2f}, accuracy {final['avg_acc']:.2f}")
    print(f"run directory: {workdir / 'finetuned'}")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(Path(sys.argv[1]))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            main(Path(tmp))
