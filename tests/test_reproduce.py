"""``mmfuse reproduce``: the paper's tables as runs that resume, a dry run for schedulers, the written table."""

from __future__ import annotations

import json
import shlex

import pytest
from reproduce_tiny import tiny_quick
from test_training_fixtures import make_release

from mmfuse import reproduce
from mmfuse.cli import main
from mmfuse.params import CONFIGURATIONS_BY_NAME


def test_every_table_row_is_a_buildable_configuration():
    for name, table in reproduce.TABLES.items():
        for row in table.rows:
            assert row.configuration in CONFIGURATIONS_BY_NAME, (name, row)
    assert [r.configuration for r in reproduce.TABLES["table6"].rows] == [
        "baseline-swin",
        "aff-concat-swin",
        "ammfm-swin",
    ]
    assert len(reproduce.TABLE8_PAPER) == 17 and all(len(v) == 4 for v in reproduce.TABLE8_PAPER.values())


def test_dry_run_prints_one_command_per_run_and_one_for_the_table(capsys, tmp_path):
    assert (
        main(
            [
                "reproduce",
                "table9",
                "--data",
                str(tmp_path),
                "--out",
                str(tmp_path / "o"),
                "--seeds",
                "0-2",
                "--dry-run",
            ]
        )
        == 0
    )
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 6 * 3 + 1
    first = shlex.split(lines[0])
    assert first[:3] == ["mmfuse", "reproduce", "table9"] and "--only" in first and "--seeds" in first
    assert "--table-only" in lines[-1]
    assert not (tmp_path / "o").exists()  # a dry run writes nothing


def test_a_quick_dry_run_makes_the_synthetic_release_once_before_printing(capsys, tmp_path):
    """Its lines may all start at once: none of them must have to create OUT/synthetic."""
    out = tmp_path / "o"
    assert main(["reproduce", "table9", "--quick", "--out", str(out), "--seeds", "0", "--dry-run"]) == 0
    captured = capsys.readouterr()
    assert (out / "synthetic" / "SYNTHETIC.json").is_file() and "synthetic release" in captured.err
    lines = captured.out.strip().splitlines()
    assert all(f"--data={out / 'synthetic'}" in line for line in lines)
    assert main(["reproduce", "table9", "--quick", "--out", str(out), "--seeds", "0", "--dry-run"]) == 0
    assert capsys.readouterr().out.strip().splitlines() == lines  # the second time it is reused


def test_unknown_rows_and_missing_data_are_explained(capsys, tmp_path):
    assert main(["reproduce", "table6", "--out", str(tmp_path)]) == 1
    assert "--data ROOT is required" in capsys.readouterr().err
    assert (
        main(
            [
                "reproduce",
                "table6",
                "--data",
                str(tmp_path),
                "--out",
                str(tmp_path),
                "--only",
                "x",
                "--dry-run",
            ]
        )
        == 1
    )
    assert "table6 has no rows ['x']" in capsys.readouterr().err


@pytest.mark.slow
def test_table6_runs_resumes_skips_and_writes_markdown_json_and_figure(capsys, tmp_path, monkeypatch):
    # Tiny backbones stand in for Swin-T/MobileNetV3 so three trainings take seconds.
    monkeypatch.setattr(reproduce, "QUICK", tiny_quick(epochs=1))
    release = make_release(tmp_path / "data", cases=24, size=36)
    out = tmp_path / "out"
    args = ["reproduce", "table6", "--quick", "--data", str(release), "--out", str(out), "--seeds", "0"]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert captured.out.count("train    ") == 3
    # Off a terminal, one line per epoch tells a log reader how far training is.
    assert (
        captured.err.count("epoch 1/1  loss ") == 3
        and " pairs/s " in captured.err
        and " left" in captured.err
    )
    data = json.loads((out / "table6.json").read_text())
    assert [r["configuration"] for r in data["rows"]] == ["baseline-swin", "aff-concat-swin", "ammfm-swin"]
    for row in data["rows"]:
        assert row["avg_auc"]["n"] == 1 and 0 <= row["avg_auc"]["mean"] <= 100
        assert row["params"] > 0 and row["paper_avg_auc"] is not None
    assert "| AFF + AAB (AMMFM) | `ammfm-swin` | 1 |" in (out / "table6.md").read_text()
    assert (out / "table6.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    search = json.loads((out / "runs" / "ammfm-swin" / "seed_0" / "weight_search.json").read_text())
    assert (search["method"], search["objective"], search["combine"]) == ("fusionm4net", "avg_acc", "logits")

    finished = out / "runs" / "ammfm-swin" / "seed_0" / "metrics.json"
    stamp = finished.stat().st_mtime_ns
    assert main(args) == 0
    assert capsys.readouterr().out.count("done     ") == 3 and finished.stat().st_mtime_ns == stamp

    # A run killed after its last checkpoint (no metrics, no model) resumes instead of restarting.
    killed = out / "runs" / "aff-concat-swin" / "seed_0"
    (killed / "metrics.json").unlink()
    import shutil

    shutil.rmtree(killed / "model")
    assert main(args) == 0
    assert "resume   aff-concat-swin seed 0" in capsys.readouterr().out
    assert (killed / "metrics.json").is_file()


def test_durations_read_at_a_glance():
    from mmfuse.progress import format_duration

    assert [format_duration(s) for s in (4.4, 65, 3725)] == ["4 s", "1 min 05 s", "1 h 02 min"]


def test_a_single_seed_shows_no_spread():
    """``90.0``, not ``90.0±0.0``: one seed says nothing about the spread over seeds."""
    from mmfuse.training.repeats import summarize, summary_markdown

    assert reproduce._cell({"mean": 90.04, "std": 0.0, "n": 1}) == "90.0"
    assert reproduce._cell({"mean": 90.04, "std": 1.23, "n": 2}) == "90.0±1.2"
    task = {"acc": 0.5, "classes": {"X": {"auc": 0.75}}}
    metrics = {"test": {"final": {"avg_auc": 0.9, "avg_acc": 0.8, "tasks": {"A": task}}}}
    one = summary_markdown({"seeds": [0], **summarize({0: metrics})})
    assert "| final | 90.0 | 80.0 |" in one and "±" not in one.split("\n", 1)[1]
    two = summary_markdown({"seeds": [0, 1], **summarize({0: metrics, 1: metrics})})
    assert "| final | 90.0±0.0 | 80.0±0.0 |" in two


def test_the_reproduce_figure_bars_start_at_zero(tmp_path, monkeypatch):
    """A cut axis makes a 2-point gap look like a factor of two."""
    import matplotlib.pyplot as plt

    from mmfuse.reproduce import figure

    shown = []
    monkeypatch.setattr(plt, "close", shown.append)
    rows = [
        {
            "label": label,
            "avg_auc": {"mean": auc, "std": 1.0},
            "avg_acc": {"mean": auc - 5, "std": 1.0},
            "paper_avg_auc": (auc + 1, 0.5),
            "paper_avg_acc": (auc - 4, 0.5),
        }
        for label, auc in (("a", 88.0), ("b", 90.0))
    ]
    figure({"rows": rows, "title": "t", "quick": True}, tmp_path / "f.png")
    [fig] = shown
    assert [axis.get_ylim()[0] for axis in fig.axes] == [0.0, 0.0]
    assert (tmp_path / "f.png").stat().st_size > 0
