"""Which data an evaluation output was computed on, so that outputs of different data are never mixed.

``metrics.json`` and ``calibration.json`` hold ``"data": {split: record}``, ``robustness.json`` holds
``"data": record``, where a record is ``{"root", "format", "split", "cases", "fingerprint"}``. The
fingerprint is a SHA-256 over the sorted (case id, labels) pairs: two evaluations saw the same cases with
the same labels exactly when their fingerprints agree, wherever the folder was moved to.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from mmfuse.data.formats import DEFAULT_FORMAT
from mmfuse.errors import UsageError
from mmfuse.metrics_layout import DATA_KEY

__all__ = ["DATA_KEY", "MixedDataError", "check_same_data", "data_record", "describe", "fingerprint"]

if TYPE_CHECKING:
    import torch

    from mmfuse.evaluation.inference import Predictions


def fingerprint(case_ids: Sequence[str], labels: torch.Tensor) -> str:
    """``sha256:<hex>`` of the cases and their labels (class indices in task order), independent of order."""
    digest = hashlib.sha256()
    for case_id, row in sorted(zip(case_ids, labels.tolist(), strict=True)):
        digest.update(json.dumps([case_id, row]).encode() + b"\n")
    return f"sha256:{digest.hexdigest()}"


def data_record(data_section: Mapping, split: str, predictions: Predictions) -> dict:
    """The record of one evaluated split (see the module docstring)."""
    return {
        "root": str(Path(str(data_section["root"])).resolve()),
        "format": str(data_section.get("format", DEFAULT_FORMAT)),
        "split": split,
        "cases": len(predictions.case_ids),
        "fingerprint": fingerprint(predictions.case_ids, predictions.labels),
    }


def describe(record: Mapping) -> str:
    return f"{record.get('root')} ({record.get('format')}), split {record.get('split')}, {record.get('cases')} cases"


class MixedDataError(UsageError):
    """Two evaluation outputs of one folder were computed on different data."""


def check_same_data(reference: Mapping, reference_name: str, record: Mapping, name: str) -> None:
    """Refuse ``record`` (from ``name``) when ``reference`` (from ``reference_name``) is of other data."""
    if reference.get("fingerprint") != record.get("fingerprint"):
        raise MixedDataError(
            f"{name} was computed on other data than {reference_name}: {describe(record)} against "
            f"{describe(reference)}; keep evaluations of other data in their own folder (evaluate --out DIR)"
        )
