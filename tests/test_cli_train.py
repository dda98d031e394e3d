"""The command line end to end on a tiny synthetic release: train, evaluate, predict, repeats, demo."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from test_training_fixtures import make_release, tiny_config, write_config

from mmfuse.cli import main
from mmfuse.data.formats.derm7pt import seven_point_score
from mmfuse.hub import from_pretrained
from mmfuse.tasks import DERM7PT_TASKS

HEADS = {"primary", "auxiliary", "fusion", "final"}
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One CLI training run (TTA, plots, weight search) shared by the tests below."""
    tmp = tmp_path_factory.mktemp("cli")
    release = make_release(tmp / "derm7pt")
    config = tiny_config(release, evaluation={"tta": True, "plots": True})
    config_file = write_config(tmp / "run.yaml", config)
    run = tmp / "run"
    assert main(["train", str(config_file), "--out", str(run)]) == 0
    return release, run


def _fractions(report: dict) -> list:
    values = [report["avg_auc"], report["avg_acc"], *report.get("mel", {}).values()]
    for entry in report["tasks"].values():
        values.append(entry["acc"])
        values += [v for metrics in entry["classes"].values() for v in metrics.values()]
    return values


@pytest.mark.slow
def test_train_writes_the_run_directory(trained):
    release, run = trained
    for name in ("config.yaml", "log.csv", "metrics.json", "predictions_valid.csv", "predictions_test.csv"):
        assert (run / name).is_file(), name
    for name in (
        "roc_test.png",
        "confusion_test.png",
        "confusion_test_normalized.png",
        "reliability_test.png",
    ):
        assert (run / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    calibration = json.loads((run / "calibration.json").read_text())
    stored = json.loads((run / "model" / "config.json").read_text())["temperatures"]
    assert calibration["fitted_on"] == "valid" and calibration["temperatures"] == stored
    assert set(stored) == {"primary", "auxiliary", "fusion"}
    assert all(set(per_task) == {t.name for t in DERM7PT_TASKS} for per_task in stored.values())
    assert set(calibration["test"]["before"]["ece"]) == set(calibration["test"]["after"]["ece"])
    surface = json.loads((run / "weight_search.json").read_text())["surface"]
    assert len(surface) == 231 and {"primary", "auxiliary", "fusion", "score"} <= set(surface[0])
    assert {p.name for p in (run / "model").iterdir()} >= {"config.json", "model.safetensors", "README.md"}
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics) == {"valid", "test", "head_weights", "data"}
    assert set(metrics["head_weights"]) == {"primary", "auxiliary", "fusion"}
    assert sum(metrics["head_weights"].values()) == pytest.approx(1.0, abs=1e-5)
    for split in ("valid", "test"):
        assert set(metrics[split]) == HEADS
        for report in metrics[split].values():
            assert set(report) == {"avg_auc", "avg_acc", "mel", "tasks", "ci"}
            low, high = report["ci"]["avg_auc"]
            assert low <= high and report["ci"]["resamples"] >= 1000
            assert list(report["tasks"]) == [t.name for t in DERM7PT_TASKS]
            assert all(v is None or 0.0 <= v <= 1.0 for v in _fractions(report))
    rows = list(csv.DictReader((run / "log.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3] and [r["swa"] for r in rows] == ["0", "1", "1"]


@pytest.mark.slow
def test_predictions_csv_holds_the_final_probabilities_of_every_test_case(trained):
    release, run = trained
    from mmfuse.data import load_table

    test_ids = [r.case_id for r in load_table({"root": str(release)}).split_records("test")]
    with (run / "predictions_test.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["case_id"] for r in rows] == test_ids
    for task in DERM7PT_TASKS:
        assert rows[0][f"{task.name}_label"] in task.classes
        total = sum(float(rows[0][f"{task.name}_prob_{c}"]) for c in task.classes)
        assert total == pytest.approx(1.0, abs=1e-4)


@pytest.mark.slow
def test_evaluate_reproduces_the_runs_test_metrics(trained, capsys):
    from mmfuse.evaluation.inference import TTA_VIEWS

    _, run = trained
    capsys.readouterr()
    assert main(["evaluate", str(run), "--split", "test", "--no-tta", "--json"]) == 0
    plain = json.loads(capsys.readouterr().out)
    assert plain["tta"] == {"views": ["identity"], "source": "--no-tta"}
    assert main(["evaluate", str(run), "--split", "test", "--json"]) == 0  # the run's own TTA by default
    fresh = json.loads(capsys.readouterr().out)
    assert fresh["tta"] == {"views": list(TTA_VIEWS), "source": "the run's evaluation.tta"}
    fresh, plain = fresh["test"], plain["test"]
    stored = json.loads((run / "metrics.json").read_text())["test"]
    assert set(plain) == set(fresh) == HEADS
    for head in HEADS:  # the saved model, evaluated again with the run's TTA, gives the run's figures
        assert fresh[head]["avg_auc"] == pytest.approx(stored[head]["avg_auc"], abs=1e-6)
        assert fresh[head]["avg_acc"] == pytest.approx(stored[head]["avg_acc"], abs=1e-6)
    assert main(["evaluate", str(run), "--split", "test", "--bootstrap", "0"]) == 0
    out = capsys.readouterr().out
    assert f"TTA on ({len(TTA_VIEWS)} views; the run's evaluation.tta)" in out.splitlines()[0]


@pytest.mark.slow
def test_evaluate_primary_only_reports_the_primary_head(trained, capsys):
    release, run = trained
    capsys.readouterr()
    assert (
        main(
            [
                "evaluate",
                str(run / "model"),
                "--data",
                str(release),
                "--split",
                "valid",
                "--primary-only",
                "--json",
            ]
        )
        == 0
    )
    metrics = json.loads(capsys.readouterr().out)["valid"]
    assert set(metrics) == {"primary", "final"}
    assert metrics["final"] == metrics["primary"]


@pytest.mark.slow
def test_predict_prints_probabilities_classes_and_the_seven_point_score(trained, capsys):
    release, run = trained
    from mmfuse.data import load_table

    record = load_table({"root": str(release)}).split_records("test")[0]
    capsys.readouterr()
    args = ["predict", str(run), "--primary", str(record.primary_path), "--json"]
    assert main([*args, "--auxiliary", str(record.auxiliary_path)]) == 0
    both = json.loads(capsys.readouterr().out)
    assert list(both["tasks"]) == [t.name for t in DERM7PT_TASKS] and both["auxiliary_used"]
    for task in DERM7PT_TASKS:
        entry = both["tasks"][task.name]
        assert sum(entry["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
        assert entry["predicted"] == max(entry["probabilities"], key=entry["probabilities"].get)
    predicted = {name: entry["predicted"] for name, entry in both["tasks"].items()}
    assert both["seven_point"]["score"] == seven_point_score(predicted)
    assert both["seven_point"]["melanoma"] == (both["seven_point"]["score"] >= 3)

    assert main(args) == 0
    alone = json.loads(capsys.readouterr().out)
    assert not alone["auxiliary_used"]
    from mmfuse.evaluation.pair import load_image

    model = from_pretrained(run / "model")
    expected = model.predict(primary=load_image(record.primary_path, model.data_config))
    for task in DERM7PT_TASKS:
        got = torch.tensor(list(alone["tasks"][task.name]["probabilities"].values()))
        torch.testing.assert_close(got, expected[task.name][0], atol=1e-6, rtol=0)
    assert alone["temperature_scaled"]

    assert main([*args, "--no-temperature"]) == 0  # the raw softmax, as before calibration
    raw = json.loads(capsys.readouterr().out)
    image = load_image(record.primary_path, model.data_config)
    expected = model.predict(primary=image, calibrated=False)
    assert not raw["temperature_scaled"]
    for task in DERM7PT_TASKS:
        got = torch.tensor(list(raw["tasks"][task.name]["probabilities"].values()))
        torch.testing.assert_close(got, expected[task.name][0], atol=1e-6, rtol=0)

    assert main(["predict", str(run), "--primary", str(release / "nope.jpg")]) == 1
    assert "nope.jpg" in capsys.readouterr().err


@pytest.mark.slow
def test_seeds_write_mean_and_std_tables(tmp_path, capsys):
    release = make_release(tmp_path / "derm7pt")
    config = tiny_config(release, train={"epochs": 1, "swa": {"epochs": 0}}, evaluation={"splits": ["test"]})
    config_file = write_config(tmp_path / "run.yaml", config)
    assert main(["train", str(config_file), "--out", str(tmp_path / "runs"), "--seeds", "0,1"]) == 0
    summary = json.loads((tmp_path / "runs" / "summary.json").read_text())
    assert summary["seeds"] == [0, 1]
    per_seed = [json.loads((tmp_path / "runs" / f"seed_{s}" / "metrics.json").read_text()) for s in (0, 1)]
    values = [m["test"]["final"]["avg_auc"] for m in per_seed]
    stat = summary["test"]["final"]["avg_auc"]
    assert stat["mean"] == pytest.approx(sum(values) / 2)
    assert stat["std"] == pytest.approx(abs(values[0] - values[1]) / 2)
    table = (tmp_path / "runs" / "summary.md").read_text()
    assert f"{100 * stat['mean']:.1f}±{100 * stat['std']:.1f}" in table
    assert "| DIAG | MEL |" in table


def test_train_errors_are_one_line_without_traceback(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  epochz: 3\n")
    assert main(["train", str(bad), "--out", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err
    assert "train.epochz" in err and "Traceback" not in err and str(bad) in err


@pytest.mark.slow
def test_demo_runs_end_to_end_when_shrunk(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--cases", "40", "--epochs", "2", "--img-size", "32"]) == 0
    printed = capsys.readouterr().out
    assert "final" in printed and str(out / "run" / "report.html") in printed
    assert "accuracy (%) per task" in printed
    chose, scores = printed.strip().splitlines()[-2:]  # what the weight search chose, and why
    assert chose.startswith("weight search on valid (objective AVG AUC) chose: primary ")
    assert scores.startswith("valid AVG AUC (%): final ") and "each head alone: primary " in scores
    assert (out / "run" / "report.html").is_file() and (out / "run" / "metrics.json").is_file()
    assert (out / "run" / "model" / "model.safetensors").is_file()
    # A second demo with the same --out replaces the first; a foreign directory is never touched.
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("precious")
    assert main(["demo", "--out", str(foreign), "--cases", "40", "--epochs", "1"]) == 1
    assert (foreign / "keep.txt").read_text() == "precious"


def test_example_configs_are_valid_and_demo_yaml_is_the_demo_config():
    from mmfuse.cli.demo import demo_config
    from mmfuse.training import load_config

    paper = load_config(REPO / "examples" / "configs" / "paper.yaml")
    assert paper["model"]["preset"] == "ammfm-swin" and paper["model"]["pretrained"] is True
    assert (paper["train"]["epochs"], paper["train"]["batch_size"], paper["train"]["swa"]["epochs"]) == (
        250,
        24,
        50,
    )
    search = paper["evaluation"]["weight_search"]
    assert (search["method"], search["search_num"], search["schedule"]) == ("fusionm4net", 20, "linear")
    assert paper["evaluation"]["tta"] is True and paper["evaluation"]["temperature_scaling"] is False
    demo = load_config(REPO / "examples" / "configs" / "demo.yaml")
    assert demo == demo_config(Path(demo["data"]["root"]))


def test_a_folder_named_like_a_published_model_does_not_shadow_it(tmp_path, monkeypatch):
    from mmfuse.runs import run_model_dir

    run = tmp_path / "ammfm-swin"
    (run / "model").mkdir(parents=True)
    (run / "model" / "config.json").write_text("{}")
    monkeypatch.chdir(tmp_path)
    assert run_model_dir("ammfm-swin") is None
    assert run_model_dir("hf-hub:ammfm-swin") is None
    assert run_model_dir("local-dir:ammfm-swin") == Path("ammfm-swin") / "model"
    assert run_model_dir("./ammfm-swin") == Path("ammfm-swin") / "model"


@pytest.mark.slow
def test_evaluate_robustness_writes_per_head_curves_deterministically(trained, tmp_path, capsys):
    release, run = trained
    args = ["evaluate", str(run), "--split", "test", "--bootstrap", "0", "--robustness"]
    assert main([*args, "--corruptions", "jpeg,occlusion", "--out", str(tmp_path / "a")]) == 0
    captured = capsys.readouterr()
    printed = captured.out
    assert "occlusion" in printed and "absent" in printed
    # 1 clean + 2 modalities x (2 corruptions x 5 severities + absent): a line each in a log, with an ETA
    progress = [line for line in captured.err.splitlines() if line.startswith("robustness ")]
    assert len(progress) == 23 and progress[0].startswith("robustness 1/23  clean  ")
    assert progress[-1].startswith("robustness 23/23  primary absent") and progress[5].endswith(" left")
    result = json.loads((tmp_path / "a" / "robustness.json").read_text())
    assert (tmp_path / "a" / "robustness.png").read_bytes()[:4] == b"\x89PNG"
    assert set(result["severities"]) == {"jpeg", "occlusion"}
    for modality in ("auxiliary", "primary"):
        points = result[modality]["jpeg"]
        assert [p["severity"] for p in points] == [1, 2, 3, 4, 5]
        assert set(points[0]["heads"]) == HEADS
    assert set(result["auxiliary"]["absent"]) == {"primary", "final"}
    assert set(result["primary"]["absent"]) == {"auxiliary", "final"}
    # an absent auxiliary image is what --primary-only reports (the curves use no TTA unless --tta)
    assert result["tta"] is False
    only = [
        "evaluate",
        str(run),
        "--split",
        "test",
        "--bootstrap",
        "0",
        "--primary-only",
        "--no-tta",
        "--json",
    ]
    assert main(only) == 0
    alone = json.loads(capsys.readouterr().out)["test"]["final"]
    assert result["auxiliary"]["absent"]["final"]["avg_auc"] == pytest.approx(alone["avg_auc"])
    # deterministic: a second evaluation writes the same curves
    assert main([*args, "--corruptions", "jpeg,occlusion", "--out", str(tmp_path / "b")]) == 0
    assert json.loads((tmp_path / "b" / "robustness.json").read_text()) == result
    assert main([*args, "--corruptions", "fog"]) == 1
    assert "unknown corruption 'fog'" in capsys.readouterr().err
