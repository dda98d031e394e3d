"""The paper's parameter claims, with full-size backbones (pretrained=False) at 224×224."""

from __future__ import annotations

import json

import pytest

from mmfuse.cli import main
from mmfuse.params import PAPER_CONFIGURATIONS


@pytest.fixture(scope="module")
def report() -> dict[str, dict]:
    from mmfuse.params import parameter_report

    return {row["name"]: row for row in parameter_report()}


def test_report_covers_every_configuration_of_tables_6_7_9_10(report):
    assert set(report) == {c.name for c in PAPER_CONFIGURATIONS}
    assert report["baseline-swin"]["paper_params"] == 58_490_000
    for row in report.values():
        if row["paper_params"] is not None:  # same order of magnitude as the paper's unpublished code
            assert 0.7 < row["params"] / row["paper_params"] < 1.1, row
    for name in ("single-swin-derm", "single-swin-clin", "single-mobilenet-derm", "single-resnet-clin"):
        assert report[name]["tables"] != "-"


def test_sff_aab_delta_over_concat_is_within_5_percent_of_the_papers(report):
    row = report["sff-aab-swin"]
    assert row["concat"] == "baseline-swin" and row["paper_delta"] == 600_000
    assert abs(row["delta"] / row["paper_delta"] - 1) <= 0.05
    assert row["delta"] == row["params"] - report["baseline-swin"]["params"]


def test_single_modality_rows_are_one_encoder_and_one_head(report):
    assert report["single-swin-derm"]["params"] == report["single-swin-clin"]["params"]
    both = report["aff-concat-swin"]["params"]
    assert report["single-swin-derm"]["params"] + report["single-mobilenet-clin"]["params"] < both


def test_fast_configurations_are_listed_as_ours(report):
    assert report["ammfm-swin-fast"]["tables"] == "ours" and report["ammfm-swin-fast"]["paper_params"] is None
    assert report["ammfm-swin-fast"]["delta"] < report["ammfm-swin"]["delta"]


def test_the_projected_aab_reading_costs_the_papers_aab_plus_its_projection(report):
    # Sec. 3.2 read literally (C and D both H×W×C): every 1×1 convolution of the AAB at the primary width,
    # 0.5826 M at Swin stages 0-2 as the paper's 0.58 M, and the projection counted apart.
    row = report["ammfm-swin-projected"]
    assert row["delta"] - row["projection"] == 582_624
    assert row["projection"] == sum(a * p + p + 2 * p for a, p in ((24, 96), (40, 192), (112, 384)))
    assert report["ammfm-swin"]["delta"] == 301_536 and "projection" not in report["ammfm-swin"]


def test_asymmetric_framework_pays_at_most_60_percent(report):
    assert report["ammfm-swin"]["params"] / report["baseline-swin"]["params"] <= 0.60


def test_aab_adds_at_most_3_percent_over_concat(report):
    assert report["ammfm-swin"]["params"] / report["aff-concat-swin"]["params"] - 1 <= 0.03


def test_aab_is_smaller_than_bab_with_both_pairs(report):
    assert report["ammfm-swin"]["params"] < report["aff-bab-swin"]["params"]
    assert report["sff-aab-swin"]["params"] < report["sff-bab-swin"]["params"]


def test_params_cli_json_lists_ours_beside_the_papers(capsys, monkeypatch, report):
    monkeypatch.setattr("mmfuse.params.parameter_report", lambda img_size=224, steps=None: list(report.values()))
    assert main(["params", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["name"]: (r["params"], r["paper_params"]) for r in rows}["ammfm-swin"] == (
        report["ammfm-swin"]["params"],
        33_060_000,
    )
