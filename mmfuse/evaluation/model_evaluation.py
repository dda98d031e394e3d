"""``mmfuse evaluate``: a trained model on one split of a dataset, optionally written to a folder.

Unlike :func:`~mmfuse.evaluation.evaluate.evaluate_run` (a run's own evaluation right after training),
nothing is fitted here: the model's temperatures and head weights are used as they were saved, and the
same report files are written (``metrics.json``, ``calibration.json``, ``predictions_<split>.csv``, the
figures). The robustness curves go to that folder too, or into the run folder when they are of the run's
own data.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from mmfuse.errors import RunDirError, UsageError
from mmfuse.evaluation.bootstrap import BootstrapOptions
from mmfuse.evaluation.calibration import calibration_report
from mmfuse.evaluation.evaluate import predict_splits, write_reports
from mmfuse.evaluation.inference import resolve_views, with_temperatures
from mmfuse.evaluation.provenance import DATA_KEY, check_same_data
from mmfuse.evaluation.report import final_probabilities, split_metrics
from mmfuse.evaluation.robustness import (
    ROBUSTNESS_FIGURE,
    ROBUSTNESS_FILE,
    plot_robustness,
    robustness_curves,
)
from mmfuse.evaluation.run_files import read_json
from mmfuse.evaluation.writers import write_json
from mmfuse.fileio import check_output_file
from mmfuse.runs import METRICS_FILE


@dataclass
class ModelEvaluation:
    """What :func:`evaluate_model` found on one split."""

    metrics: dict  # metrics.json's content, with "tta" and "calibration" (what was computed, and how)
    calibration: dict  # the split's ECE report before and after the temperatures
    cases: int


def check_report_folder(out: Path, *, overwrite: bool) -> None:
    """Refuse ``--out`` before minutes of inference: a file, or a folder whose metrics.json would be replaced.

    A training run's metrics.json is its record (the report and model card read it): it is never replaced
    silently.
    """
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file; give a directory to write the report into")
    metrics = out / METRICS_FILE
    check_output_file(metrics)  # nor a device or FIFO under its name, even with --overwrite
    if metrics.exists() and not overwrite:
        raise RunDirError(
            f"--out {metrics.parent} already holds {metrics.name} (a training run's results or an earlier "
            "evaluation); choose another folder, or pass --overwrite to replace it"
        )


def evaluate_model(
    model,
    data_section: Mapping,
    split: str,
    *,
    out: Path | None = None,
    device: torch.device | str = "cpu",
    tta: bool | Sequence[str] = False,
    tta_source: str = "",
    primary_only: bool = False,
    temperatures: bool = True,
    batch_size: int = 64,
    bootstrap: BootstrapOptions | None = None,
) -> ModelEvaluation:
    """``model``'s metrics on ``split`` of ``data_section`` (a run config's data section), with its head weights.

    ``temperatures=False`` ignores the fitted temperatures (each head's raw softmax); ``tta_source`` says
    where ``tta`` came from (recorded in the metrics). With ``out`` the report files are written there;
    ``metrics.json`` then holds the split, the head weights and the data record.
    """
    raw, records = predict_splits(
        model, data_section, [split], device=device, tta=tta, primary_only=primary_only, batch_size=batch_size
    )
    scaled = model.temperatures if temperatures else None
    predictions = {split: with_temperatures(raw[split], scaled)}
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        metrics, calibration = write_reports(
            out, raw, predictions, model, records, fitted_on=None, bootstrap=bootstrap
        )
        write_json(out / METRICS_FILE, metrics)
        report = calibration[split]
    else:
        weights = model.head_weights_dict
        metrics = {
            split: split_metrics(predictions[split], model.tasks, weights, bootstrap=bootstrap),
            "head_weights": weights,
            DATA_KEY: records,
        }
        report = calibration_report(
            final_probabilities(raw[split], weights),
            final_probabilities(predictions[split], weights),
            raw[split].labels,
            model.tasks,
        )
    metrics["tta"] = {"views": list(resolve_views(tta)), "source": tta_source}
    metrics["calibration"] = {
        "temperature_scaled": bool(scaled),
        "ece_raw": report["before"]["ece"],
        "ece_scaled": report["after"]["ece"],
    }
    return ModelEvaluation(metrics, report, len(predictions[split].case_ids))


def check_run_data(run_dir: Path, record: Mapping) -> None:
    """Refuse when the run's metrics.json records other data for this split (a dataset changed since training)."""
    metrics = read_json(run_dir / METRICS_FILE)
    reference = metrics.get(DATA_KEY, record["split"]) if metrics is not None else None
    if reference is not None:
        check_same_data(
            reference.mapping(), str(metrics.file), record, f"this evaluation of {record['root']}"
        )


def write_robustness(
    model,
    data_section: Mapping,
    split: str,
    record: Mapping,
    *,
    out: Path | None,
    run_dir: Path | None,
    device: torch.device | str = "cpu",
    **options,
) -> dict:
    """:func:`robustness_curves` (``options`` are its own), written to ``out``, else into the run folder.

    Into the run folder only for the data the run evaluated (``record``: this evaluation's data), and the
    run's page is rebuilt to show the curves.
    """
    target = out or run_dir
    if target is None:
        raise UsageError("--robustness needs --out DIR when RUN_OR_MODEL is not a run directory")
    if out is None:
        check_run_data(run_dir, record)
    result = robustness_curves(model, data_section, split, device=device, **options)
    target.mkdir(parents=True, exist_ok=True)
    write_json(target / ROBUSTNESS_FILE, result)
    plot_robustness(target / ROBUSTNESS_FIGURE, result)
    if run_dir is not None and target.resolve() == run_dir.resolve():
        from mmfuse.evaluation.html_report import write_report

        write_report(run_dir)  # the run's page now shows the curves
    return result
