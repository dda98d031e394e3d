"""The official ISIC scorer (``isic-challenge-scoring``), found for the tests that compare against it.

Its 5.6.0 release needs pandas < 3, which the development environment may not have; so it is used
in-process when importable, else through its command line (on PATH, or named by ``MMFUSE_ISIC_SCORING``,
e.g. from a separate virtual environment: ``pip install 'isic-challenge-scoring==5.6.0' 'pandas<3'``).
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest


def scorer_command() -> list[str] | None:
    given = os.environ.get("MMFUSE_ISIC_SCORING") or shutil.which("isic-challenge-scoring")
    return [given] if given else None


def _importable() -> bool:
    try:
        import isic_challenge_scoring  # noqa: F401
    except ImportError:
        return False
    return True


needs_scorer = pytest.mark.skipif(
    not _importable() and scorer_command() is None,
    reason="the official scorer is absent (pip install 'isic-challenge-scoring==5.6.0' 'pandas<3' "
    "in this environment or another, and set MMFUSE_ISIC_SCORING to its isic-challenge-scoring)",
)


def write_truth(path: Path, ids, labels, classes) -> Path:
    """A ground-truth CSV as the scorer reads it: ``image`` then one-hot class columns."""
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["image", *classes])
        for case, label in zip(ids, labels, strict=True):
            writer.writerow([case, *("1.0" if i == label else "0.0" for i in range(len(classes)))])
    return path


def as_scorer_submission(submission: Path, out: Path) -> Path:
    """The submission with its id column renamed ``image`` (the name the 5.6.0 scorer reads)."""
    with submission.open(newline="") as fh:
        rows = list(csv.reader(fh))
    rows[0][0] = "image"
    with out.open("w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    return out


def official_scores(truth: Path, submission: Path) -> dict:
    """``{"per_category": {metric: {class: v}}, "macro_average": {...}, "aggregate": {...}}``."""
    if _importable():
        from isic_challenge_scoring.classification import ClassificationMetric, ClassificationScore

        score = ClassificationScore.from_file(truth, submission, ClassificationMetric.BALANCED_ACCURACY)
        return json.loads(json.dumps(score.to_dict(rocs=False)))
    done = subprocess.run(
        [*scorer_command(), "-o", "json", "classification", str(truth), str(submission)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout)
