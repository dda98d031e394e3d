"""Challenge submission files: one row per case, its id, then one probability per class of the single task.

The layout is the ISIC challenges' (``MILK10k_Sample_Submit.csv``: ``lesion_id,AKIEC,BCC,...``); the id
column's name comes from the dataset format (:attr:`~mmfuse.data.DatasetFormat.submission_id_column`).
Probabilities are written with every digit of their value, so a scorer reading the file computes its
metrics on exactly the numbers the run scored.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from dataclasses import replace
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


def predict_benchmark(
    model,
    data_config: Mapping,
    out: str | Path,
    *,
    device: torch.device | str = "cpu",
    tta: bool | Sequence[str] = False,
    batch_size: int = 64,
) -> Path:
    """The submission file of a format's unlabelled benchmark part, from a single-task model's final prediction.

    ``data_config`` is the run's (its format, metadata, root); the format's ``benchmark_options`` select
    the benchmark part, whose cases are predicted as the run's test split was (temperatures, head weights).
    """
    from mmfuse.data.formats import DEFAULT_FORMAT, get_format
    from mmfuse.evaluation.evaluate import evaluation_dataset, predict_split
    from mmfuse.evaluation.report import final_probabilities

    name = data_config.get("format", DEFAULT_FORMAT)
    fmt = get_format(name)
    if fmt.benchmark_options is None:
        raise UsageError(f"data format {name!r} has no unlabelled benchmark part to predict")
    if len(model.tasks) != 1:
        raise UsageError(
            f"a submission holds one task's probabilities; this model has {len(model.tasks)} tasks"
        )
    config = {k: v for k, v in data_config.items() if k != "cv"} | dict(fmt.benchmark_options)
    dataset = evaluation_dataset(model, config, fmt.benchmark_split, labelled=False)
    predictions = predict_split(model, dataset, device=device, tta=tta, batch_size=batch_size)
    predictions = replace(predictions, combine=model.head_combine)
    task = model.tasks[0]
    final = final_probabilities(predictions, model.head_weights_dict)[task.name]
    return write_submission(out, predictions.case_ids, final, task, id_column=fmt.submission_id_column)
