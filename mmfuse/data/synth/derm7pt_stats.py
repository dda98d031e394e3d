"""Aggregate label statistics of the real Derm7pt metadata, the only thing the synthetic release copies.

For each raw diagnosis: its number of cases and, per criterion and metadata column, how many of those
cases carry each raw value. No row is stored. The table is package data (``derm7pt_stats.json``, what
:func:`label_statistics` computed from the 1011-case meta.csv); a test recomputes it from the real file
when that file is available.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from importlib import resources

# Columns sampled per diagnosis, independently given the diagnosis.
CONDITIONAL_COLUMNS: tuple[str, ...] = (
    "pigment_network",
    "streaks",
    "pigmentation",
    "regression_structures",
    "dots_and_globules",
    "blue_whitish_veil",
    "vascular_structures",
    "level_of_diagnostic_difficulty",
    "elevation",
    "location",
    "sex",
    "management",
)


def label_statistics(rows: Iterable[Mapping[str, str]]) -> dict[str, dict]:
    """``{diagnosis: {"count": n, column: {raw value: n}}}``, diagnoses and values by falling count."""
    rows = list(rows)
    out: dict[str, dict] = {}
    for diagnosis, count in Counter(r["diagnosis"] for r in rows).most_common():
        members = [r for r in rows if r["diagnosis"] == diagnosis]
        out[diagnosis] = {"count": count}
        for column in CONDITIONAL_COLUMNS:
            out[diagnosis][column] = dict(Counter(r[column] for r in members).most_common())
    return out


def _load_statistics() -> dict[str, dict]:
    """The shipped table, diagnoses and values in the order :func:`label_statistics` gives them."""
    text = resources.files(__package__).joinpath("derm7pt_stats.json").read_text(encoding="utf-8")
    return json.loads(text)


# label_statistics() of the 1011-case Derm7pt meta.csv; the sampler draws in this order.
DERM7PT_STATISTICS: dict[str, dict] = _load_statistics()
