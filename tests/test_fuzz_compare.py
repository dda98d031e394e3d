"""Fuzzing ``mmfuse compare``: damaged predictions files and any bootstrap options keep the error contract.

A damaged cell must never become an AUC: the command either refuses the file (exit 1, naming it) or every
probability it read was a number in [0, 1]. Options outside their bounds are refused while parsing (exit 2).
"""

from __future__ import annotations

import math

from hostile import FUZZ, assert_contract, assert_unchanged, fingerprint, invoke
from hypothesis import given
from hypothesis import strategies as st

CASES = 12
HEADER = "case_id,T_label,T_prob_neg,T_prob_pos"


def predictions(seed: int) -> list[list[str]]:
    rows = []
    for i in range(CASES):
        pos = ((i * 37 + seed * 11) % 97) / 97
        rows.append([f"c{i}", "pos" if i % 2 else "neg", f"{1 - pos:.6f}", f"{pos:.6f}"])
    return rows


def write_run(folder, rows: list[list[str]], header: str = HEADER):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "predictions_test.csv").write_text(
        header + "\n" + "".join(",".join(r) + "\n" for r in rows), encoding="utf-8"
    )
    return folder


CELL = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["nan", "NaN", "inf", "-inf", "1e309", "-0", "1.0000001", "", " ", "0x1p-2", "1_0"]),
    st.text(max_size=8),
)


def _is_probability(text: str) -> bool:
    try:
        value = float(text)
    except ValueError:
        return False
    return math.isfinite(value) and 0 <= value <= 1


@FUZZ
@given(edits=st.lists(st.tuples(st.integers(0, CASES - 1), st.integers(0, 3), CELL), min_size=1, max_size=4))
def test_compare_on_damaged_cells_refuses_or_reads_only_probabilities(tmp_path_factory, edits):
    tmp = tmp_path_factory.mktemp("cmp")
    rows = predictions(1)
    for row, column, text in edits:
        rows[row][column] = text.replace("\n", " ").replace("\r", " ").replace('"', "").replace(",", ";")
    a = write_run(tmp / "a", rows)
    b = write_run(tmp / "b", predictions(2))
    before = fingerprint(tmp)
    outcome = invoke("compare", a, b, "--bootstrap", "20")
    assert_contract(outcome)
    if outcome.code == 0:
        assert all(_is_probability(cell) for r in rows for cell in r[2:]), str(outcome)
    else:
        assert "predictions_test.csv" in outcome.err or "share no case" in outcome.err, str(outcome)
    assert_unchanged(before, tmp)


NUMBER_TEXT = st.one_of(
    st.integers(-(10**12), 10**12).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(max_size=6),
)


@FUZZ
@given(
    option=st.sampled_from(["--bootstrap", "--bootstrap-seed", "--level"]),
    value=NUMBER_TEXT,
)
def test_compare_bootstrap_options_are_parsed_or_refused_never_allocated(tmp_path_factory, option, value):
    tmp = tmp_path_factory.mktemp("opt")
    a, b = write_run(tmp / "a", predictions(1)), write_run(tmp / "b", predictions(2))
    if value.startswith("-") and not value[1:2].isdigit():
        value = " " + value  # argparse would read "-x" as an option, not as this option's value
    outcome = invoke("compare", a, b, option, value)
    assert_contract(outcome, allowed=(0, 2))
