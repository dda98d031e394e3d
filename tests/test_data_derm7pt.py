"""The Derm7pt adapter against the real metadata (when available) and on hand-made tables."""

from __future__ import annotations

import csv
import os
import shutil
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mmfuse import DERM7PT_TASKS
from mmfuse.data import DataError, class_counts
from mmfuse.data.formats.derm7pt import (
    RAW_TO_CLASS,
    TASK_COLUMNS,
    group_label,
    parse_release,
    seven_point_score,
)
from mmfuse.data.synth.derm7pt_stats import CONDITIONAL_COLUMNS, DERM7PT_STATISTICS, label_statistics

REPO = Path(__file__).resolve().parents[1]
REAL_META = Path(os.environ.get("MMFUSE_DERM7PT_META", REPO.parent / "shared" / "derm7pt" / "meta.csv"))
needs_real_meta = pytest.mark.skipif(not REAL_META.is_file(), reason="real Derm7pt meta.csv not available")

TABLE_1 = {
    "DIAG": {"BCC": 42, "NEV": 575, "MEL": 252, "MISC": 97, "SK": 45},
    "PN": {"ABS": 400, "TYP": 381, "ATP": 230},
    "STR": {"ABS": 653, "REG": 107, "IR": 251},
    "PIG": {"ABS": 588, "REG": 118, "IR": 305},
    "RS": {"ABS": 758, "PRS": 253},
    "DaG": {"ABS": 229, "REG": 334, "IR": 448},
    "BWV": {"ABS": 816, "PRS": 195},
    "VS": {"ABS": 823, "REG": 117, "IR": 71},  # the paper prints 833: 823 + 117 + 71 = 1011
}


@pytest.fixture(scope="module")
def real_release(tmp_path_factory):
    if not REAL_META.is_file():
        pytest.skip("real Derm7pt meta.csv not available")
    root = tmp_path_factory.mktemp("derm7pt")
    (root / "meta").mkdir()
    shutil.copy(REAL_META, root / "meta" / "meta.csv")  # a temporary copy, deleted with tmp_path
    with pytest.warns(UserWarning, match="stratified split"):
        return parse_release(root)


@needs_real_meta
def test_real_metadata_grouped_counts_equal_table_1(real_release):
    assert real_release.problems == []
    assert class_counts(real_release.records, DERM7PT_TASKS) == TABLE_1


@needs_real_meta
def test_seven_point_score_reproduces_the_column(real_release):
    wrong = [
        r.case_id
        for r in real_release.records
        if seven_point_score(r.labels) != r.metadata["seven_point_score"]
    ]
    assert wrong == []


@needs_real_meta
def test_cases_without_clinical_image_have_no_auxiliary(real_release):
    missing = [r for r in real_release.records if r.auxiliary_path is None]
    assert len(missing) == 9
    assert all(r.metadata["notes"] for r in missing)
    assert all(r.metadata["elevation"] and r.metadata["management"] for r in real_release.records)


@needs_real_meta
def test_fallback_split_matches_official_sizes_and_is_stratified(real_release):
    assert {k: len(v) for k, v in real_release.splits.items()} == {"train": 413, "valid": 203, "test": 395}
    for split, share in (("train", 413 / 1011), ("test", 395 / 1011)):
        counts = class_counts(real_release.split_records(split), DERM7PT_TASKS)["DIAG"]
        for cls, total in TABLE_1["DIAG"].items():
            assert abs(counts[cls] - share * total) < 1


def _in_order(table: dict) -> list:
    """The table as nested item lists: equal only when the order of keys is too (the sampler draws in it)."""
    return [(key, _in_order(value) if isinstance(value, dict) else value) for key, value in table.items()]


@needs_real_meta
def test_embedded_synthetic_statistics_are_those_of_the_real_table():
    with REAL_META.open(newline="") as fh:
        computed = label_statistics(csv.DictReader(fh))
    assert _in_order(computed) == _in_order(DERM7PT_STATISTICS)


def test_shipped_synthetic_statistics_are_consistent_counts():
    """Every diagnosis has every sampled column, and each column's counts add up to the diagnosis's."""
    assert sum(stats["count"] for stats in DERM7PT_STATISTICS.values()) == 1011
    for diagnosis, stats in DERM7PT_STATISTICS.items():
        assert list(stats) == ["count", *CONDITIONAL_COLUMNS], diagnosis
        for column in CONDITIONAL_COLUMNS:
            assert sum(stats[column].values()) == stats["count"], (diagnosis, column)


@given(
    task=st.sampled_from(sorted(RAW_TO_CLASS)),
    data=st.data(),
    upper=st.booleans(),
    pad=st.sampled_from(["", " ", "  "]),
)
def test_grouping_ignores_case_and_spaces_and_lands_in_the_task_classes(task, data, upper, pad):
    raw = data.draw(st.sampled_from(sorted(RAW_TO_CLASS[task])))
    text = pad + (raw.upper() if upper else raw) + pad
    spec = next(t for t in DERM7PT_TASKS if t.name == task)
    assert group_label(task, text) == RAW_TO_CLASS[task][raw]
    assert group_label(task, text) in spec.classes


def test_every_class_of_every_task_is_reachable():
    for spec in DERM7PT_TASKS:
        assert set(RAW_TO_CLASS[spec.name].values()) == set(spec.classes)
    assert set(TASK_COLUMNS) == {t.name for t in DERM7PT_TASKS}


@given(st.text(min_size=1, max_size=20))
def test_unknown_raw_strings_are_refused_with_the_column_name(text):
    if text.strip().lower() in RAW_TO_CLASS["STR"]:
        return
    with pytest.raises(DataError, match="streaks"):
        group_label("STR", text)


def test_seven_point_rule_weights():
    base = {"PN": "TYP", "BWV": "ABS", "VS": "REG", "STR": "REG", "PIG": "REG", "DaG": "REG", "RS": "ABS"}
    assert seven_point_score(base) == 0
    assert seven_point_score({**base, "PN": "ATP", "BWV": "PRS", "VS": "IR"}) == 6
    assert seven_point_score({**base, "STR": "IR", "PIG": "IR", "DaG": "IR", "RS": "PRS"}) == 4
