"""The layout of ``metrics.json``, shared by the code that writes it and every reader (report, model card,
seed summaries): ``{split: {head: report}}`` plus keys that are not splits."""

from __future__ import annotations

from collections.abc import Mapping

# The record of each split's data (mmfuse.evaluation.provenance).
DATA_KEY = "data"
# metrics.json keys that are not splits: the searched head weights and the data records.
METRICS_INFO_KEYS = ("head_weights", DATA_KEY)
# The two summary figures of every head's report (the paper's AVG AUC and AVG ACC), in display order.
HEADLINE_METRICS = ("avg_auc", "avg_acc")


def metric_splits(metrics: Mapping) -> dict:
    """``{split: {head: report}}``: metrics.json without its :data:`METRICS_INFO_KEYS`."""
    return {split: heads for split, heads in metrics.items() if split not in METRICS_INFO_KEYS}
