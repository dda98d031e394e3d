"""Challenge submission files: one row per case, its id, then one probability per class of the single task.

The layout is the ISIC challenges' (``MILK10k_Sample_Submit.csv``: ``lesion_id,AKIEC,BCC,...``); the id
column's name comes from the dataset format (:attr:`~mmfuse.data.DatasetFormat.submission_id_column`).
Probabilities are written with every digit of their value, so a scorer reading the file computes its
metrics on exactly the numbers the run scored.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path

import torch

from mmfuse.errors import UsageError
from mmfuse.fileio import atomic_write_bytes
from mmfuse.tasks import TaskSpec

DEFAULT_ID_COLUMN = "case_id"


def submission_id_column(format_name: str | None) -> str:
    """The id column a format's submissions use (``case_id`` unless the format names another)."""
    from mmfuse.data.formats import DEFAULT_FORMAT, get_format

    return getattr(get_format(format_name or DEFAULT_FORMAT), "submission_id_column", DEFAULT_ID_COLUMN)


def write_submission(
    path: str | Path,
    case_ids: Sequence[str],
    probabilities: torch.Tensor,
    task: TaskSpec,
    *,
    id_column: str = DEFAULT_ID_COLUMN,
) -> Path:
    """``id_column`` then one column per class of ``task`` (its order), one row per case."""
    probabilities = probabilities.detach().double().cpu()
    if probabilities.shape != (len(case_ids), task.num_classes):
        raise UsageError(
            f"submission: probabilities of shape {tuple(probabilities.shape)} do not match "
            f"{len(case_ids)} cases and the {task.num_classes} classes of task {task.name!r}"
        )
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([id_column, *task.classes])
    for case_id, row in zip(case_ids, probabilities.tolist(), strict=True):
        writer.writerow([case_id, *(repr(p) for p in row)])
    atomic_write_bytes(Path(path), buffer.getvalue().encode())
    return Path(path)
