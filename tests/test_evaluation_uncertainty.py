"""Bootstrap intervals, DeLong's test and the paired comparison of two runs."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score

from mmfuse.cli import main
from mmfuse.evaluation.bootstrap import (
    BootstrapOptions,
    resample_counts,
    resampled_metrics,
    weighted_auc,
)
from mmfuse.evaluation.compare import CompareError, bootstrap_p_value, compare_runs, load_run_predictions
from mmfuse.evaluation.delong import delong_test, placements
from mmfuse.evaluation.inference import Predictions
from mmfuse.evaluation.metrics import head_metrics
from mmfuse.evaluation.report import format_class_table, format_table, split_metrics
from mmfuse.evaluation.writers import write_predictions_csv
from mmfuse.tasks import DERM7PT_TASKS, TaskSpec

TASKS = (TaskSpec("A", ("ABS", "X", "Y")), TaskSpec("B", ("NO", "YES")))


def _random_probabilities(tasks, n: int, generator: torch.Generator, labels=None, signal: float = 0.0):
    probabilities = {}
    for i, task in enumerate(tasks):
        logits = torch.randn(n, task.num_classes, generator=generator)
        if labels is not None:
            logits[torch.arange(n), labels[:, i]] += signal
        probabilities[task.name] = logits.softmax(dim=1)
    return probabilities


def _labels(tasks, n: int, generator: torch.Generator) -> torch.Tensor:
    return torch.stack([torch.randint(0, t.num_classes, (n,), generator=generator) for t in tasks], dim=1)


@given(
    scores=st.lists(st.integers(0, 5), min_size=4, max_size=40),
    flags=st.lists(st.booleans(), min_size=4, max_size=40),
)
def test_weighted_auc_with_unit_counts_is_scikit_learns_auc_ties_included(scores, flags):
    n = min(len(scores), len(flags))
    s, positive = np.array(scores[:n], dtype=float), np.array(flags[:n])
    value = weighted_auc(s, positive, np.ones((1, n), dtype=np.int32))[0]
    if positive.all() or not positive.any():
        assert math.isnan(value)
    else:
        assert value == pytest.approx(roc_auc_score(positive, s))


def test_weighted_auc_of_counts_is_the_auc_of_the_resampled_cases():
    rng = np.random.default_rng(1)
    scores, positive = rng.integers(0, 8, 50).astype(float), rng.random(50) < 0.4
    counts = resample_counts(50, 20, seed=3)
    values = weighted_auc(scores, positive, counts)
    for row, value in zip(counts, values, strict=True):
        drawn = np.repeat(np.arange(50), row)
        if positive[drawn].all() or not positive[drawn].any():
            assert math.isnan(value)
        else:
            assert value == pytest.approx(roc_auc_score(positive[drawn], scores[drawn]))


def test_resamples_draw_n_cases_each_and_depend_only_on_the_seed():
    counts = resample_counts(30, 1000, seed=7)
    assert counts.shape == (1000, 30) and (counts.sum(axis=1) == 30).all()
    assert np.array_equal(counts, resample_counts(30, 1000, seed=7))
    assert not np.array_equal(counts, resample_counts(30, 1000, seed=8))
    # each case is drawn once per resample on average
    assert counts.mean(axis=0) == pytest.approx(np.ones(30), abs=0.15)


def test_unit_resample_reproduces_every_reported_metric():
    generator = torch.Generator().manual_seed(0)
    labels = _labels(DERM7PT_TASKS, 80, generator)
    probabilities = _random_probabilities(DERM7PT_TASKS, 80, generator, labels, signal=1.0)
    from mmfuse.evaluation.derm7pt import report_groups

    groups = report_groups(DERM7PT_TASKS)
    report = head_metrics(probabilities, labels, DERM7PT_TASKS, groups=groups)
    flat = resampled_metrics(probabilities, labels, DERM7PT_TASKS, np.ones((1, 80), np.int32), groups=groups)
    assert flat["avg_auc"][0] == pytest.approx(report["avg_auc"], abs=1e-6)
    assert flat["avg_acc"][0] == pytest.approx(report["avg_acc"], abs=1e-6)
    for metric, value in report["mel"].items():
        assert flat[f"mel.{metric}"][0] == pytest.approx(value, abs=1e-6), metric
    for task in DERM7PT_TASKS:
        for name, entry in report["tasks"][task.name]["classes"].items():
            expected, got = entry["auc"], flat[f"auc.{task.name}.{name}"][0]
            assert (math.isnan(expected) and math.isnan(got)) or got == pytest.approx(expected, abs=1e-6)


def _predictions(tasks, n: int, seed: int, signal: float = 1.5) -> Predictions:
    generator = torch.Generator().manual_seed(seed)
    labels = _labels(tasks, n, generator)
    heads = {
        h: _random_probabilities(tasks, n, generator, labels, signal)
        for h in ("primary", "auxiliary", "fusion")
    }
    return Predictions([f"c{i}" for i in range(n)], labels, torch.ones(n, dtype=torch.bool), heads)


def test_split_metrics_carry_intervals_for_every_head_average_class_and_the_melanoma_set():
    predictions = _predictions(DERM7PT_TASKS, 120, seed=0)
    weights = {"primary": 0.4, "auxiliary": 0.2, "fusion": 0.4}
    options = BootstrapOptions(resamples=1000, seed=0)
    metrics = split_metrics(predictions, DERM7PT_TASKS, weights, bootstrap=options)
    assert set(metrics) == {"primary", "auxiliary", "fusion", "final"}
    for report in metrics.values():
        ci = report["ci"]
        assert ci["resamples"] == 1000 and ci["level"] == 0.95 and ci["seed"] == 0
        for key in ("avg_auc", "avg_acc"):
            low, high = ci[key]
            assert 0 <= low < report[key] < high <= 1
        assert set(ci["mel"]) == {"auc", "precision", "sensitivity", "specificity"}
        for task in DERM7PT_TASKS:
            assert set(ci["tasks"][task.name]["classes"]) == set(task.classes)
            low, high = ci["tasks"][task.name]["acc"]
            assert low <= report["tasks"][task.name]["acc"] <= high
    again = split_metrics(predictions, DERM7PT_TASKS, weights, bootstrap=options)
    assert again["final"]["ci"] == metrics["final"]["ci"]  # seeded
    other = split_metrics(predictions, DERM7PT_TASKS, weights, bootstrap=BootstrapOptions(1000, seed=1))
    assert other["final"]["ci"]["avg_auc"] != metrics["final"]["ci"]["avg_auc"]
    table = format_table(metrics, DERM7PT_TASKS)
    low, high = metrics["final"]["ci"]["avg_auc"]
    assert f"[{100 * low:.1f}, {100 * high:.1f}]" in table
    assert "DIAG MEL" in format_class_table(metrics["final"], DERM7PT_TASKS)


def test_console_tables_name_their_accuracy_columns_and_stay_aligned_with_long_names():
    from mmfuse.evaluation.calibration import calibration_report, format_ece
    from mmfuse.evaluation.report import final_probabilities

    tasks = (TaskSpec("ulceration_present", ("absent", "present_and_large")), TaskSpec("B", ("NO", "YES")))
    predictions = _predictions(tasks, 60, seed=0)
    weights = {"primary": 1 / 3, "auxiliary": 1 / 3, "fusion": 1 / 3}
    metrics = split_metrics(predictions, tasks, weights, bootstrap=BootstrapOptions(50, seed=0))
    lines = format_table(metrics, tasks).splitlines()
    assert "accuracy (%) per task" in lines[0]
    # the label spans the task columns: it starts where the first task column starts
    assert lines[0].index("-") == lines[1].index("AVG ACC") + len("AVG ACC") + 2
    assert len({len(line) for line in lines[1:]}) == 1  # header and rows equally wide
    assert len({line.index("ulceration_present") + len("ulceration_present") for line in lines[1:2]}) == 1
    rows = format_class_table(metrics["final"], tasks).splitlines()[1:]
    assert len({row.index(".") for row in rows}) == 1  # the AUC column lines up
    final = final_probabilities(predictions, weights)
    ece = format_ece(calibration_report(final, final, predictions.labels, tasks), tasks).splitlines()[1:]
    assert len({row.index(".") for row in ece}) == 1


def test_interval_width_shrinks_like_one_over_root_n():
    options = BootstrapOptions(resamples=1000, seed=0)
    weights = {"primary": 1 / 3, "auxiliary": 1 / 3, "fusion": 1 / 3}
    widths = []
    for n in (100, 1600):
        ci = split_metrics(_predictions(TASKS, n, seed=n), TASKS, weights, bootstrap=options)["final"]["ci"]
        widths.append(ci["avg_acc"][1] - ci["avg_acc"][0])
    assert widths[1] / widths[0] == pytest.approx(0.25, rel=0.35)


# -- DeLong -------------------------------------------------------------------------------------------------


def _brute_force_delong(scores_a, scores_b, positive):
    """DeLong et al. 1988 written out pairwise: psi, V10, V01, S10, S01."""

    def components(scores):
        x, y = scores[positive], scores[~positive]
        psi = (x[:, None] > y[None, :]) + 0.5 * (x[:, None] == y[None, :])
        return psi.mean(), psi.mean(axis=1), psi.mean(axis=0)

    (auc_a, v10_a, v01_a), (auc_b, v10_b, v01_b) = components(scores_a), components(scores_b)
    m, n = v10_a.size, v01_a.size
    s10 = np.cov(np.stack([v10_a, v10_b]))
    s01 = np.cov(np.stack([v01_a, v01_b]))
    s = s10 / m + s01 / n
    variance = s[0, 0] + s[1, 1] - 2 * s[0, 1]
    if variance <= 0:  # identical rankings: no z
        return auc_a, auc_b, v10_a, v01_a, math.nan, math.nan
    z = (auc_a - auc_b) / math.sqrt(variance)
    return auc_a, auc_b, v10_a, v01_a, z, math.erfc(abs(z) / math.sqrt(2))


@given(seed=st.integers(0, 10_000), n=st.integers(6, 60), ties=st.booleans())
def test_delong_equals_the_pairwise_definition(seed, n, ties):
    rng = np.random.default_rng(seed)
    positive = rng.random(n) < 0.4
    positive[:4] = [True, True, False, False]
    a = positive + rng.normal(size=n)
    b = positive * 0.5 + rng.normal(size=n)
    if ties:
        a, b = np.round(a), np.round(b * 2) / 2
    auc_a, auc_b, v10, v01, z, p = _brute_force_delong(a, b, positive)
    fast_auc, fast_v10, fast_v01 = placements(a, positive)
    assert fast_auc == pytest.approx(auc_a) and fast_auc == pytest.approx(roc_auc_score(positive, a))
    assert np.allclose(fast_v10, v10) and np.allclose(fast_v01, v01)
    result = delong_test([a], [b], positive)
    assert result.auc_a == pytest.approx(auc_a) and result.auc_b == pytest.approx(auc_b)
    if np.isfinite(z):
        assert result.z == pytest.approx(z, rel=1e-6, abs=1e-9)
        assert result.p_value == pytest.approx(p, rel=1e-6, abs=1e-12)


def test_delong_of_identical_scores_finds_nothing_and_of_a_clearly_better_score_finds_it():
    rng = np.random.default_rng(0)
    positive = rng.random(300) < 0.3
    noise = rng.normal(size=300)
    same = delong_test([noise + positive], [noise + positive], positive)
    assert same.difference == 0 and same.p_value == 1.0
    better = delong_test([positive * 2.0 + noise], [positive * 0.2 + noise], positive)
    assert better.difference > 0 and better.p_value < 1e-6
    low, high = better.interval
    assert low < better.difference < high


def test_delong_under_the_null_rejects_about_five_percent():
    rng = np.random.default_rng(1)
    rejected = 0
    for _ in range(300):
        positive = rng.random(80) < 0.5
        a = positive * 0.8 + rng.normal(size=80)
        b = positive * 0.8 + rng.normal(size=80)
        rejected += delong_test([a], [b], positive).p_value < 0.05
    assert 0.015 < rejected / 300 < 0.10


# -- compare ------------------------------------------------------------------------------------------------


def _write_run(directory, predictions: Predictions, tasks, split: str = "test"):
    directory.mkdir(parents=True, exist_ok=True)
    final = predictions.probabilities["fusion"]
    write_predictions_csv(
        directory / f"predictions_{split}.csv", predictions.case_ids, predictions.labels, final, tasks
    )
    return directory


def _with_signal(base: Predictions, signal: float, seed: int) -> Predictions:
    generator = torch.Generator().manual_seed(seed)
    heads = {"fusion": _random_probabilities(TASKS, len(base.case_ids), generator, base.labels, signal)}
    return Predictions(base.case_ids, base.labels, base.auxiliary_present, heads)


def test_compare_finds_a_real_difference_and_not_a_null_one(tmp_path):
    base = _predictions(TASKS, 400, seed=0)
    strong = _write_run(tmp_path / "strong", _with_signal(base, 2.5, 1), TASKS)
    weak = _write_run(tmp_path / "weak", _with_signal(base, 0.5, 2), TASKS)
    options = BootstrapOptions(1000, seed=0)
    result = compare_runs(load_run_predictions(strong), load_run_predictions(weak), bootstrap=options)
    assert result["shared_cases"] == 400
    for metric in ("avg_auc", "avg_acc"):
        row = result[metric]
        assert row["difference"] > 0.1 and row["p_value"] < 0.01 and row["interval"][0] > 0
    assert set(result["delong"]) == {"A.X", "A.Y", "B.NO", "B.YES"}  # ABS is not scored
    assert all(r["p_value"] < 0.01 for r in result["delong"].values())
    same = compare_runs(load_run_predictions(strong), load_run_predictions(strong), bootstrap=options)
    assert same["avg_auc"]["difference"] == 0 and same["avg_auc"]["p_value"] == 1.0


def test_bootstrap_p_value_counts_a_rounded_zero_difference_as_a_tie():
    # Resamples on which both runs score the same: exactly 0 in exact arithmetic, ±1e-16 in floats.
    rounded = [(0.1 + 0.2) - 0.3, 0.3 - (0.1 + 0.2), -1.1e-16, 1.1e-16]
    exact = np.array([0.0] * 4 + [0.25] * 14 + [-0.5] * 2)
    noisy = exact.copy()
    noisy[:4] = rounded
    # A tie counts on both sides: #{Δ ≤ 0} = 6, #{Δ ≥ 0} = 18, B = 20.
    assert bootstrap_p_value(exact) == pytest.approx(2 * (6 + 1) / 21)
    assert bootstrap_p_value(noisy) == bootstrap_p_value(exact)
    assert bootstrap_p_value(np.array([1e-9] * 4 + [-0.5] * 16)) == pytest.approx(2 * 5 / 21)  # not a tie


def test_compare_pairs_the_shared_cases_in_any_order(tmp_path):
    base = _predictions(TASKS, 60, seed=0)
    a = _write_run(tmp_path / "a", base, TASKS)
    order = list(reversed(range(40)))
    subset = Predictions(
        [base.case_ids[i] for i in order],
        base.labels[order],
        base.auxiliary_present[order],
        {h: {t: p[order] for t, p in per.items()} for h, per in base.probabilities.items()},
    )
    b = _write_run(tmp_path / "b", subset, TASKS)
    result = compare_runs(load_run_predictions(a), load_run_predictions(b))
    assert result["shared_cases"] == 40 and result["a"]["cases"] == 60
    assert result["avg_auc"]["difference"] == pytest.approx(0, abs=1e-6)  # same predictions on shared cases


def test_compare_averages_the_seeds_of_a_seeds_folder(tmp_path):
    base = _predictions(TASKS, 100, seed=0)
    members = [_with_signal(base, 1.0, seed) for seed in (1, 2, 3)]
    for seed, member in enumerate(members):
        _write_run(tmp_path / "seeds" / f"seed_{seed}", member, TASKS)
    other = _write_run(tmp_path / "other", _with_signal(base, 0.5, 9), TASKS)
    result = compare_runs(load_run_predictions(tmp_path / "seeds"), load_run_predictions(other))
    assert result["a"]["members"] == 3
    singles = [
        compare_runs(load_run_predictions(tmp_path / "seeds" / f"seed_{s}"), load_run_predictions(other))
        for s in range(3)
    ]
    for metric in ("avg_auc", "avg_acc"):
        assert result[metric]["a"] == pytest.approx(np.mean([s[metric]["a"] for s in singles]))
    key = "A.X"
    assert result["delong"][key]["a"] == pytest.approx(np.mean([s["delong"][key]["a"] for s in singles]))


def test_compare_refuses_other_tasks_other_cases_and_other_labels(tmp_path):
    base = _predictions(TASKS, 30, seed=0)
    a = load_run_predictions(_write_run(tmp_path / "a", base, TASKS))
    other_tasks = (TaskSpec("A", ("ABS", "X", "Y")), TaskSpec("C", ("NO", "YES")))
    renamed_task = {
        "fusion": {"A": base.probabilities["fusion"]["A"], "C": base.probabilities["fusion"]["B"]}
    }
    other = Predictions(base.case_ids, base.labels, base.auxiliary_present, renamed_task)
    b = load_run_predictions(_write_run(tmp_path / "b", other, other_tasks))
    with pytest.raises(CompareError, match="different tasks"):
        compare_runs(a, b)
    renamed = Predictions(
        [f"z{i}" for i in range(30)], base.labels, base.auxiliary_present, base.probabilities
    )
    with pytest.raises(CompareError, match="share no case"):
        compare_runs(a, load_run_predictions(_write_run(tmp_path / "c", renamed, TASKS)))
    flipped = Predictions(base.case_ids, base.labels.clone(), base.auxiliary_present, base.probabilities)
    flipped.labels[3, 1] = 1 - flipped.labels[3, 1]
    with pytest.raises(CompareError, match="disagree on the labels of 1 shared case.*'c3'"):
        compare_runs(a, load_run_predictions(_write_run(tmp_path / "d", flipped, TASKS)))


def test_compare_cli_prints_the_table_and_writes_json(tmp_path, capsys):
    base = _predictions(TASKS, 80, seed=0)
    a = _write_run(tmp_path / "a", _with_signal(base, 2.0, 1), TASKS)
    b = _write_run(tmp_path / "b", _with_signal(base, 1.0, 2), TASKS)
    out = tmp_path / "cmp.json"
    assert main(["compare", str(a), str(b), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "AVG AUC" in printed and "DeLong" in printed and "80 shared cases" in printed
    stored = json.loads(out.read_text())
    assert stored["split"] == "test" and stored["bootstrap"]["resamples"] == 1000
    assert main(["compare", str(a), str(tmp_path / "missing")]) == 1
    assert "run directory not found" in capsys.readouterr().err
    assert main(["compare", str(a), str(b), "--split", "valid"]) == 1
    assert "predictions_valid.csv" in capsys.readouterr().err


def test_compare_says_its_class_p_values_are_unadjusted_and_adjusts_them_with_holm(tmp_path, capsys):
    from mmfuse.evaluation.compare import holm_adjust

    assert holm_adjust([0.01, 0.04, 0.03, 0.2]) == pytest.approx([0.04, 0.09, 0.09, 0.2])
    base = _predictions(TASKS, 80, seed=0)
    a = _write_run(tmp_path / "a", _with_signal(base, 2.0, 1), TASKS)
    b = _write_run(tmp_path / "b", _with_signal(base, 1.0, 2), TASKS)
    assert main(["compare", str(a), str(b)]) == 0
    assert "p unadjusted for the 4 class comparisons: --adjust holm" in capsys.readouterr().out
    out = tmp_path / "cmp.json"
    assert main(["compare", str(a), str(b), "--adjust", "holm", "--out", str(out)]) == 0
    assert "p Holm-adjusted over the 4 class comparisons" in capsys.readouterr().out
    rows = [r for r in json.loads(out.read_text())["delong"].values() if r is not None]
    assert all(r["p_value"] <= r["p_holm"] <= 1 for r in rows)
    assert holm_adjust([r["p_value"] for r in rows]) == pytest.approx([r["p_holm"] for r in rows])


def test_model_card_shows_the_intervals_of_the_averages(tiny_model_kwargs, tmp_path):
    from mmfuse import build_model

    model = build_model("ammfm-swin", **tiny_model_kwargs)
    predictions = _predictions(DERM7PT_TASKS, 60, seed=0)
    weights = {"primary": 0.4, "auxiliary": 0.2, "fusion": 0.4}
    metrics = {"test": split_metrics(predictions, DERM7PT_TASKS, weights, bootstrap=BootstrapOptions(200))}
    card = (model.save_pretrained(tmp_path, metrics=metrics) / "README.md").read_text()
    low, high = metrics["test"]["final"]["ci"]["avg_auc"]
    assert f"{100 * metrics['test']['final']['avg_auc']:.1f} [{100 * low:.1f}, {100 * high:.1f}]" in card
