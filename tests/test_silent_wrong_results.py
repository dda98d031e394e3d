"""Inputs that used to give silently wrong results now give the right pixels or a clear error.

Each test reproduces one hostile input: a 16-bit scan, a dataset whose tasks are not the model's, a
damaged config.json, NaN outputs, duplicate case ids, a cache that disagrees with its manifest, and
``evaluate --out`` pointed at a training run.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import mmfuse
from mmfuse.cli import main
from mmfuse.data import DataError, build_dataset, load_cache, prepare_cache
from mmfuse.data.formats.paired_csv import load_paired_csv, parse_paired_csv
from mmfuse.data.images import load_resized
from mmfuse.data.validate import check_paired_csv
from mmfuse.errors import MmfuseError, NonFiniteOutputError
from mmfuse.evaluation.inference import check_finite_logits
from mmfuse.hub import CONFIG_FILE, ModelConfigError, from_pretrained
from mmfuse.tasks import DERM7PT_TASKS, TaskMismatchError, TaskSpec
from mmfuse.training.losses import multitask_loss

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
BINARY_TASKS = [f"T{i}" for i in range(8)]


def write_paired_csv(root: Path, tasks=BINARY_TASKS, cases: int = 6, ids=None, image=None) -> Path:
    """A paired CSV release with ``len(tasks)`` binary tasks and tiny RGB images; returns the schema path."""
    (root / "img").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    rows = []
    for i in range(cases):
        for side in ("a", "b"):
            Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(
                root / "img" / f"{side}{i}.png"
            )
        row = {"id": ids[i] if ids else f"c{i}", "main": f"a{i}.png", "extra": f"b{i}.png"}
        row["split"] = ["train", "valid", "test"][i % 3]
        row.update({t: ["neg", "pos"][(i + j) % 2] for j, t in enumerate(tasks)})
        rows.append(row)
    if image is not None:
        rows[0]["main"] = image
    with (root / "cases.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    task_yaml = "".join(f"  - name: {t}\n    classes: [neg, pos]\n" for t in tasks)
    schema = root / "schema.yaml"
    schema.write_text(
        "table: cases.csv\nimage_dir: img\nprimary: main\nauxiliary: extra\ncase_id: id\nsplit: split\n"
        f"tasks:\n{task_yaml}"
    )
    return schema


# -- 16-bit images --------------------------------------------------------------------------------------


def test_a_16_bit_greyscale_png_keeps_its_grey_levels_instead_of_saturating(tmp_path):
    ramp = np.linspace(0, 65535, 32 * 32).reshape(32, 32).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "scan16.png")
    assert Image.open(tmp_path / "scan16.png").mode.startswith("I;16")
    pixels = load_resized(tmp_path / "scan16.png", 32)
    assert pixels.dtype == np.uint8 and pixels.shape == (32, 32, 3)
    expected = np.round(ramp.astype(np.float64) * 255 / 65535)
    assert np.abs(pixels[..., 0].astype(int) - expected).max() <= 1  # was 255 almost everywhere
    assert abs(pixels.mean() - 127.5) < 2


def test_a_floating_point_image_is_reported_not_guessed(tmp_path):
    Image.fromarray(np.full((8, 8), 0.5, np.float32), "F").save(tmp_path / "float.tiff")
    with pytest.raises(DataError, match=r"float\.tiff.*floating-point"):
        load_resized(tmp_path / "float.tiff", 8)


# -- tasks of the data against the model's ---------------------------------------------------------------


def test_a_dataset_with_other_tasks_than_the_model_is_an_error_naming_both(tmp_path):
    schema = write_paired_csv(tmp_path)
    config = {"format": "paired_csv", "root": str(tmp_path), "schema": str(schema), "cache": "off"}
    with pytest.raises(TaskMismatchError) as info:
        build_dataset(config, "train", train=True, img_size=16, mean=MEAN, std=STD, tasks=DERM7PT_TASKS)
    message = str(info.value)
    assert "DIAG(BCC,NEV,MEL,MISC,SK)" in message and "T0(neg,pos)" in message and str(tmp_path) in message
    same = [TaskSpec(t, ("neg", "pos")) for t in BINARY_TASKS]
    assert len(build_dataset(config, "train", train=False, img_size=16, mean=MEAN, std=STD, tasks=same)) == 2


def test_training_with_an_explicit_task_mismatch_fails_before_any_epoch(tmp_path, capsys):
    from test_training_fixtures import tiny_config, write_config

    schema = write_paired_csv(tmp_path / "data", tasks=["A", "B"])
    config = tiny_config(tmp_path / "data", model={"tasks": "derm7pt"})
    config["data"].update(format="paired_csv", schema=str(schema))
    run = tmp_path / "run"
    assert main(["train", str(write_config(tmp_path / "run.yaml", config)), "--out", str(run)]) == 1
    err = capsys.readouterr().err
    assert "model: DIAG(" in err and "data:  A(neg,pos), B(neg,pos)" in err
    assert not (run / "checkpoints").exists()


def test_the_loss_names_a_task_mismatch_instead_of_an_index_error():
    tasks = DERM7PT_TASKS
    logits = {"primary": {t.name: torch.zeros(4, t.num_classes) for t in tasks}}
    with pytest.raises(TaskMismatchError, match=r"shape \(4, 2\).*8 tasks"):
        multitask_loss(logits, torch.zeros(4, 2, dtype=torch.int64), tasks)
    labels = torch.zeros(4, len(tasks), dtype=torch.int64)
    labels[1, 4] = 2  # RS has two classes
    with pytest.raises(TaskMismatchError, match=r"'RS'.*\[0, 2\)"):
        multitask_loss(logits, labels, tasks)
    narrow = {"primary": {**logits["primary"], "PN": torch.zeros(4, 2)}}
    with pytest.raises(TaskMismatchError, match=r"2 logits for task 'PN'.*3 classes"):
        multitask_loss(narrow, torch.zeros(4, len(tasks), dtype=torch.int64), tasks)


# -- config.json values ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    model = mmfuse.build_model(
        "ammfm-swin", primary="test_convnext", auxiliary="test_efficientnet", img_size=32
    )
    return Path(model.save_pretrained(tmp_path_factory.mktemp("saved") / "model"))


@pytest.mark.parametrize(
    "field, value, words",
    [
        ("head_weights", {"primary": math.nan, "auxiliary": 0.5, "fusion": 0.5}, "head_weights"),
        ("head_weights", {"primary": -1.0, "auxiliary": 1.0, "fusion": 1.0}, "non-negative"),
        ("head_weights", {"primary": 1.0}, "head_weights must map exactly"),
        ("std", [0, 0, 0], "std must hold 3 positive"),
        ("mean", [0.5], "mean must list 3 numbers"),
        ("img_size", -4, "img_size must be an integer from 1 to 1024"),
        ("head_dropout", 1.5, r"head_dropout must be a number in \[0, 1\)"),
    ],
)
def test_a_config_json_with_out_of_range_values_fails_to_load(saved_model, tmp_path, field, value, words):
    broken = tmp_path / "model"
    broken.mkdir()
    for file in saved_model.iterdir():
        (broken / file.name).write_bytes(file.read_bytes())
    config = json.loads((broken / CONFIG_FILE).read_text())
    config[field] = value
    (broken / CONFIG_FILE).write_text(json.dumps(config))  # json writes NaN, as a careless editor would
    with pytest.raises(ModelConfigError, match=words) as info:
        from_pretrained(broken)
    assert CONFIG_FILE in str(info.value)


def test_build_model_checks_the_same_values():
    with pytest.raises(ModelConfigError, match="std"):
        mmfuse.build_model(
            "ammfm-swin", primary="test_convnext", auxiliary="test_efficientnet", std=[1, 0, 1]
        )


def test_non_finite_outputs_are_an_error_not_a_result(saved_model):
    model = from_pretrained(saved_model)
    with torch.no_grad():
        for parameter in model.heads["fusion"].parameters():
            parameter.fill_(math.nan)
    images = torch.zeros(2, 3, 32, 32)
    with pytest.raises(NonFiniteOutputError, match="NaN or infinite"):
        model.predict(primary=images, auxiliary=images)
    assert all(
        torch.isfinite(p).all() for p in model.predict(primary=images).values()
    )  # primary head is fine
    logits = {"fusion": {"DIAG": torch.tensor([[[0.0, 1.0], [math.inf, 0.0], [0.0, 0.0]]])}}
    with pytest.raises(NonFiniteOutputError, match=r"1 case\(s\) \(b\) in fusion/DIAG"):
        check_finite_logits(logits, ["a", "b", "c"])


# -- duplicate case ids ---------------------------------------------------------------------------------


def test_duplicate_case_ids_are_reported_by_check_and_refused_by_loading(tmp_path):
    schema = write_paired_csv(tmp_path, tasks=["A"], ids=["x", "y", "x", "z", "w", "v"])
    problems = [p for p in check_paired_csv(tmp_path, schema) if p.kind == "duplicate case id"]
    assert len(problems) == 1 and "'x'" in problems[0].message and "rows 0, 2" in problems[0].message
    assert parse_paired_csv(tmp_path, schema).problems == problems
    with pytest.raises(DataError, match="duplicate case id"):
        load_paired_csv(tmp_path, schema)


# -- prepared cache against its manifest ----------------------------------------------------------------


@pytest.mark.parametrize("damage", ["rows", "size", "manifest"])
def test_a_cache_that_disagrees_with_its_manifest_is_an_error(tmp_path, damage):
    schema = write_paired_csv(tmp_path, tasks=["A"])
    records = [r for r in load_paired_csv(tmp_path, schema).records if r is not None]
    folder = prepare_cache(tmp_path, records, 16)
    assert load_cache(tmp_path, 16) is not None
    if damage == "rows":
        np.save(folder / "primary.npy", np.load(folder / "primary.npy")[:3])
    elif damage == "size":
        side = load_cache(tmp_path, 16).side
        np.save(folder / "auxiliary.npy", np.zeros((len(records), side - 2, side - 2, 3), np.uint8))
    else:
        manifest = json.loads((folder / "manifest.json").read_text())
        manifest["entries"] = [{"primary": None}]
        (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DataError, match=r"cache .* is damaged") as info:
        load_cache(tmp_path, 16)
    assert str(folder) in str(info.value)


# -- evaluate --out ------------------------------------------------------------------------------------


def test_evaluate_out_never_replaces_a_runs_metrics_silently(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.json").write_text('{"test": "the training run"}')
    assert main(["evaluate", str(run), "--out", str(run)]) == 1
    err = capsys.readouterr().err
    assert "already holds metrics.json" in err and "--overwrite" in err
    assert (run / "metrics.json").read_text() == '{"test": "the training run"}'


def test_errors_of_this_module_are_mmfuse_errors():
    for error in (TaskMismatchError, NonFiniteOutputError, ModelConfigError, DataError):
        assert issubclass(error, MmfuseError)
