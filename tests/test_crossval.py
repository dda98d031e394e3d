"""Grouped, stratified k-fold cross-validation: the split kind, ``train --folds K`` and its summary."""

from __future__ import annotations

import csv
import json
from collections import Counter

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from isic_scorer import as_scorer_submission, needs_scorer, official_scores, write_truth

from mmfuse.cli import main
from mmfuse.data.split import cross_validation_splits, grouped_stratified_folds
from mmfuse.data.synth.milk10k import synthesize_milk10k
from mmfuse.errors import DataError


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from("abcd"), st.integers(0, 40)), min_size=6, max_size=120),
    st.integers(2, 6),
    st.integers(0, 3),
)
def test_folds_keep_groups_whole_and_spread_each_class_within_one_group(cases, folds, seed):
    strata_of_group = {}
    strata, groups = [], []
    for stratum, group in cases:
        strata.append(strata_of_group.setdefault(group, stratum))  # a group has one stratum
        groups.append(str(group))
    if len(set(groups)) < folds:
        with pytest.raises(DataError, match="groups"):
            grouped_stratified_folds(strata, groups, folds, seed=seed)
        return
    assignment = grouped_stratified_folds(strata, groups, folds, seed=seed)
    assert assignment == grouped_stratified_folds(strata, groups, folds, seed=seed)
    assert {g: {f for f, h in zip(assignment, groups, strict=True) if h == g} for g in groups} == {
        g: {assignment[groups.index(g)]} for g in groups
    }
    for stratum in set(strata):
        per_fold = Counter(
            assignment[groups.index(g)]
            for g in {g for g, s in zip(groups, strata, strict=True) if s == stratum}
        )
        counts = [per_fold.get(f, 0) for f in range(folds)]
        assert max(counts) - min(counts) <= 1, (stratum, counts)


def test_each_fold_has_disjoint_splits_and_the_test_folds_partition_the_cases():
    strata = [c for c in "AAAAAAAAAABBBBBCCCDD" for _ in range(2)]
    groups = [f"g{i // 2}" for i in range(len(strata))]  # two cases per group
    tests = []
    for fold in range(4):
        splits = cross_validation_splits(strata, groups, 4, fold, seed=1)
        members = [set(splits[s]) for s in ("train", "valid", "test")]
        assert sum(map(len, members)) == len(strata) and set.union(*members) == set(range(len(strata)))
        assert all(splits[s] for s in ("train", "valid", "test"))
        tests += splits["test"]
        train_groups = {groups[i] for i in splits["train"] + splits["valid"]}
        assert not train_groups & {groups[i] for i in splits["test"]}
    assert sorted(tests) == list(range(len(strata)))


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    return synthesize_milk10k(tmp_path_factory.mktemp("cv") / "release", cases=36, size=32, seed=2).root


def _config(tmp_path, release, **data):
    config = {
        "model": {"primary": "test_convnext", "auxiliary": "test_efficientnet", "img_size": 32},
        "data": {"format": "milk10k", "root": str(release), "metadata": True, **data},
        "train": {"epochs": 1, "batch_size": 12, "lr": 1e-3, "swa": {"epochs": 0}, "log_every": 1},
        "evaluation": {"tta": False, "plots": False, "bootstrap": {"resamples": 20}},
    }
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_too_many_folds_fail_before_anything_is_trained(release, tmp_path, capsys):
    config = _config(tmp_path, release)
    assert main(["train", str(config), "--out", str(tmp_path / "run"), "--folds", "40"]) == 1
    assert "--folds 40 is more than the 36 groups" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_train_folds_writes_every_fold_and_a_summary_covering_each_case_once(release, tmp_path, capsys):
    config, run = _config(tmp_path, release), tmp_path / "run"
    assert main(["train", str(config), "--out", str(run), "--folds", "3"]) == 0
    summary = json.loads((run / "cv.json").read_text())
    assert summary["folds"] == 3 and summary["out_of_fold"]["cases"] == 36
    test_cases = []
    for fold in range(3):
        with (run / f"fold_{fold}" / "splits.csv").open(newline="") as fh:
            rows = list(csv.DictReader(fh))
        assert Counter(r["split"] for r in rows).keys() == {"train", "valid", "test"} and len(rows) == 36
        test_cases += [r["case_id"] for r in rows if r["split"] == "test"]
        with (run / f"fold_{fold}" / "submission_test.csv").open(newline="") as fh:
            header = next(csv.reader(fh))
        assert header[0] == "lesion_id" and len(header) == 12
        assert "ISIC challenge metrics" in (run / f"fold_{fold}" / "report.html").read_text()
    assert sorted(test_cases) == sorted({c for c in test_cases}) and len(test_cases) == 36
    counts = summary["class_counts"]
    for cls in counts["0"]["test"]:
        per_fold = [counts[str(f)]["test"][cls] for f in range(3)]
        assert max(per_fold) - min(per_fold) <= 1
    assert any("fewer than the 3 folds" in note for note in summary["notes"])  # MAL_OTH: one lesion
    final = summary["per_fold"]["test"]["final"]
    assert {"balanced_accuracy", "macro_auc", "macro_dice"} <= set(final)
    assert "Out-of-fold" in (run / "cv.md").read_text()
    capsys.readouterr()

    bench = tmp_path / "bench.csv"
    assert main(["predict", str(run / "fold_0"), "--benchmark", "--out", str(bench)]) == 0
    with bench.open(newline="") as fh, (release / "MILK10k_Sample_Submit.csv").open(newline="") as sample:
        ours, expected = list(csv.reader(fh)), list(csv.reader(sample))
    assert ours[0] == expected[0] and [r[0] for r in ours] == [r[0] for r in expected]
    assert all(abs(sum(map(float, r[1:])) - 1) < 1e-5 for r in ours[1:])
    assert (
        main(["predict", str(run / "fold_0"), "--benchmark", "--out", str(bench)]) == 1
    )  # never overwritten

    before = (run / "cv.json").read_bytes()  # a second start without --resume changes nothing
    assert main(["train", str(config), "--out", str(run), "--folds", "3"]) == 1
    assert "--resume" in capsys.readouterr().err and (run / "cv.json").read_bytes() == before
    assert main(["train", str(config), "--out", str(run), "--folds", "3", "--resume"]) == 0
    assert json.loads((run / "cv.json").read_text())["out_of_fold"] == summary["out_of_fold"]


@pytest.fixture(scope="module")
def every_class_in_every_fold(tmp_path_factory):
    """44 lesions, 4 of each class (labels rewritten): the official scorer needs every class in a test fold."""
    root = synthesize_milk10k(tmp_path_factory.mktemp("cv") / "release", cases=44, size=32, seed=4).root
    path = root / "MILK10k_Training_GroundTruth.csv"
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    classes = list(rows[0])[1:]
    for i, row in enumerate(rows):
        row.update({c: "1.0" if c == classes[i % len(classes)] else "0.0" for c in classes})
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return root


@pytest.mark.slow
@needs_scorer
def test_a_folds_submission_scores_through_the_official_package_as_in_metrics_json(
    every_class_in_every_fold, tmp_path
):
    config = _config(tmp_path, every_class_in_every_fold, cv={"folds": 3, "fold": 1})
    run = tmp_path / "run"
    assert main(["train", str(config), "--out", str(run)]) == 0
    with (run / "predictions_test.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    classes = [c.removeprefix("DX_prob_") for c in rows[0] if c.startswith("DX_prob_")]
    truth = write_truth(
        tmp_path / "truth.csv",
        [r["case_id"] for r in rows],
        [classes.index(r["DX_label"]) for r in rows],
        classes,
    )
    official = official_scores(truth, as_scorer_submission(run / "submission_test.csv", tmp_path / "sub.csv"))
    ours = json.loads((run / "metrics.json").read_text())["test"]["final"]["tasks"]["DX"]
    for key in ("balanced_accuracy",):
        assert ours[key] == pytest.approx(official["aggregate"][key], abs=1e-6)
    for metric in ("auc", "auc_sens_80", "ap", "dice", "sensitivity", "specificity", "ppv", "npv"):
        assert ours[f"macro_{metric}"] == pytest.approx(official["macro_average"][metric], abs=1e-6), metric
        for cls, value in official["per_category"][metric].items():
            assert ours["isic_classes"][cls][metric] == pytest.approx(value, abs=1e-6), (metric, cls)
    intervals = json.loads((run / "metrics.json").read_text())["test"]["final"]["ci"]["tasks"]["DX"]
    assert {"balanced_accuracy", "macro_auc", "macro_auc_sens_80", "macro_ap", "macro_dice"} <= set(intervals)
    assert all(low <= high for low, high in (intervals[k] for k in ("macro_auc", "balanced_accuracy")))


def test_the_example_milk10k_config_is_the_reproduce_recipe():
    from pathlib import Path

    from mmfuse.reproduce import _merge
    from mmfuse.reproduce_milk10k import RECIPE
    from mmfuse.training.config import load_config, resolve

    example = Path(__file__).resolve().parents[1] / "examples" / "configs" / "milk10k.yaml"
    assert load_config(example) == resolve(_merge(RECIPE, {"data": {"root": "/data/milk10k"}}))


@pytest.mark.slow
def test_reproduce_milk10k_quick_writes_a_table_over_the_same_folds(tmp_path, monkeypatch, capsys):
    from mmfuse import reproduce_milk10k as milk

    quick = {
        **milk.QUICK,
        "model": {**milk.QUICK["model"], "primary": "test_convnext", "auxiliary": "test_efficientnet"},
    }
    monkeypatch.setattr(milk, "QUICK", quick)
    monkeypatch.setattr(milk, "QUICK_LESIONS", 30)
    monkeypatch.setattr(milk, "INTERVAL_RESAMPLES", 50)
    out = tmp_path / "out"
    assert (
        main(["reproduce", "milk10k", "--quick", "--out", str(out), "--only", "ammfm-swin", "--folds", "2"])
        == 0
    )
    table = json.loads((out / "milk10k.json").read_text())
    (row,) = table["rows"]
    assert row["preset"] == "ammfm-swin" and row["lesions"] == 30 and row["params"] > 0 and row["gflops"] > 0
    low, high = row["intervals"]["macro_auc"]
    assert low <= high
    assert "| ammfm-swin |" in (out / "milk10k.md").read_text()
    assert (
        main(["reproduce", "milk10k", "--quick", "--out", str(out), "--only", "ammfm-swin", "--folds", "2"])
        == 0
    )
    assert "done     ammfm-swin" in capsys.readouterr().out  # finished rows are kept


def test_a_paired_csv_schema_groups_folds_by_its_group_by_column(tmp_path):
    from mmfuse.data import load_table

    rows = [
        {"case": f"c{i}", "img": f"c{i}.jpg", "patient": f"p{i // 3}", "grade": "lo" if i % 6 < 3 else "hi"}
        for i in range(30)
    ]
    with (tmp_path / "cases.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    schema = {
        "table": "cases.csv",
        "primary": "img",
        "case_id": "case",
        "split": None,
        "group_by": "patient",
        "tasks": [{"name": "GRADE", "column": "grade", "classes": ["lo", "hi"]}],
    }
    (tmp_path / "schema.yaml").write_text(yaml.safe_dump(schema))
    config = {"format": "paired_csv", "root": str(tmp_path), "schema": str(tmp_path / "schema.yaml")}
    tested = []
    for fold in range(5):
        table = load_table({**config, "cv": {"folds": 5, "fold": fold}})
        patients = {s: {r.metadata["patient"] for r in table.split_records(s)} for s in table.splits}
        assert not patients["test"] & (patients["train"] | patients["valid"])
        tested += [r.case_id for r in table.split_records("test")]
    assert sorted(tested) == sorted(r["case"] for r in rows)
    assert "patient" not in [f.name for f in table.metadata_fields]  # a grouping column, never an input
