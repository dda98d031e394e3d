"""The layout of a cross-validation folder (``train --folds K``), shared by training, which writes the
fold runs, and evaluation, which summarises them: ``RUN/fold_<k>/`` runs, the fold plan, ``cv.json`` and
``cv.md``."""

from __future__ import annotations

from pathlib import Path

CV_JSON = "cv.json"
CV_MD = "cv.md"
PLAN_FILE = "folds.json"


def fold_dir(out: str | Path, fold: int) -> Path:
    """The run folder of fold ``fold`` (from 0) of the cross-validation in ``out``."""
    return Path(out) / f"fold_{fold}"
