"""Evaluate a model on a dataset split, and finish a training run: weight search, metrics, report files."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import torch

from mmfuse.errors import UsageError
from mmfuse.evaluation.bootstrap import BootstrapOptions
from mmfuse.evaluation.calibration import (
    ECE_BINS,
    calibration_report,
    fit_temperatures,
    plot_reliability,
)
from mmfuse.evaluation.inference import Predictions, collect_predictions, scaled_logits, with_temperatures
from mmfuse.evaluation.provenance import DATA_KEY, data_record
from mmfuse.evaluation.report import final_probabilities, split_metrics
from mmfuse.evaluation.weight_search import WeightSearchResult, search_head_weights
from mmfuse.evaluation.writers import (
    plot_confusion_matrices,
    plot_roc_curves,
    write_json,
    write_predictions_csv,
)
from mmfuse.model import HEADS
from mmfuse.runs import METRICS_FILE, PREDICTIONS_FILE, SUBMISSION_FILE
from mmfuse.runtime.data import dataset_options, evaluation_loader

WEIGHT_SEARCH_FILE = "weight_search.json"
CALIBRATION_FILE = "calibration.json"


def evaluation_dataset(model, data_section: Mapping, split: str, *, labelled: bool = True):
    """The split as the model sees it at test time: no augmentation, the model's size and normalisation."""
    from mmfuse.data import build_dataset

    prep = model.preprocessing
    return build_dataset(
        dict(data_section),
        split,
        train=False,
        img_size=prep["img_size"],
        mean=prep["mean"],
        std=prep["std"],
        metadata_encoding=getattr(model, "metadata_encoding", None),
        tasks=model.tasks,
        labelled=labelled,
    )


def predict_split(
    model,
    dataset,
    *,
    device: torch.device | str = "cpu",
    tta: bool | Sequence[str] = False,
    primary_only: bool = False,
    auxiliary_only: bool = False,
    calibrated: bool = True,
    batch_size: int = 64,
    num_workers: int = 0,
    amp: str = "none",
    channels_last: bool = False,
    progress: bool | None = None,
) -> Predictions:
    """Per-head probabilities for every case of ``dataset`` (see :func:`collect_predictions`)."""
    loader = evaluation_loader(dataset, batch_size=batch_size, num_workers=num_workers)
    return collect_predictions(
        model,
        loader,
        device=device,
        tta=tta,
        primary_only=primary_only,
        auxiliary_only=auxiliary_only,
        calibrated=calibrated,
        amp=amp,
        channels_last=channels_last,
        progress=progress,
    )


def write_split_report(
    out: str | Path,
    split: str,
    predictions: Predictions,
    tasks,
    head_weights: Mapping[str, float],
    *,
    plots: bool = True,
    bootstrap: BootstrapOptions | None = None,
) -> dict:
    """``predictions_<split>.csv`` and (with ``plots``) ``roc_<split>.png``, ``confusion_<split>.png`` (counts) and
    ``confusion_<split>_normalized.png`` (rows as shares); returns the split's metrics.

    With ``bootstrap`` every head's report carries its intervals (see :func:`split_metrics`).
    """
    out = Path(out)
    final = final_probabilities(predictions, head_weights)
    write_predictions_csv(
        out / PREDICTIONS_FILE.format(split=split), predictions.case_ids, predictions.labels, final, tasks
    )
    if plots:
        plot_roc_curves(
            out / f"roc_{split}.png", final, predictions.labels, tasks, title=f"{split}: final prediction"
        )
        for suffix, normalize, what in (
            ("", False, "cases"),
            ("_normalized", True, "share of each true class"),
        ):
            plot_confusion_matrices(
                out / f"confusion_{split}{suffix}.png",
                final,
                predictions.labels,
                tasks,
                title=f"{split}: final prediction ({what})",
                normalize=normalize,
            )
    return split_metrics(predictions, tasks, head_weights, bootstrap=bootstrap)


def bootstrap_options(evaluation: Mapping) -> BootstrapOptions | None:
    """The ``evaluation.bootstrap`` section of a run config (``None`` when its resamples are 0)."""
    section = evaluation.get("bootstrap") or {}
    if not section.get("resamples"):
        return None
    return BootstrapOptions(int(section["resamples"]), int(section["seed"]), float(section["level"]))


def tune_head_weights(
    model,
    predictions: Predictions,
    *,
    step: float,
    objective: str,
    combine: str = "probabilities",
    method: str = "simplex",
    search_num: int = 20,
    schedule: str = "linear",
) -> WeightSearchResult | None:
    """Tune ``model``: run :func:`~mmfuse.evaluation.weight_search.search_head_weights` (the pure search) on
    its ``predictions`` of the validation split and store the weights and mixing mode it finds in ``model``.

    ``method="fusionm4net"`` walks the reference's candidates on the logits (it ignores ``step``,
    ``objective`` and ``combine``: avg ACC of mixed logits). A single-modality model has one head and
    nothing to weigh: ``None``, the model unchanged.
    """
    if getattr(model, "single_modality", None) is not None:
        return None
    reference = method == "fusionm4net"
    result = search_head_weights(
        predictions.probabilities,
        predictions.labels,
        model.tasks,
        auxiliary_present=predictions.auxiliary_present,
        step=step,
        objective=None if reference else objective,
        combine=combine,
        logits=scaled_logits(predictions) if reference or combine == "logits" else None,
        method=method,
        search_num=search_num,
        schedule=schedule,
    )
    model.set_head_weights(result.weights)
    model.set_head_combine(result.combine)
    return result


def write_calibration(
    out: str | Path,
    raw: Mapping[str, Predictions],
    calibrated: Mapping[str, Predictions],
    model,
    *,
    fitted_on: str | None,
    plots: bool = True,
    data: Mapping[str, Mapping] | None = None,
) -> dict:
    """``calibration.json`` (and ``reliability_<split>.png``): the final head's ECE before and after scaling.

    "Before" is the raw softmax of every head, "after" the model's temperatures, both mixed with the
    model's head weights; the file also holds the temperatures, the split they were fitted on and ``data``,
    the record of each split's data (:mod:`mmfuse.evaluation.provenance`).
    """
    out = Path(out)
    weights = model.head_weights_dict
    content: dict = {"fitted_on": fitted_on, "temperatures": model.temperatures, "ece_bins": ECE_BINS}
    if data is not None:
        content[DATA_KEY] = {split: dict(data[split]) for split in raw}
    for split, predictions in raw.items():
        report = calibration_report(
            final_probabilities(predictions, weights),
            final_probabilities(calibrated[split], weights),
            predictions.labels,
            model.tasks,
        )
        content[split] = report
        if plots:
            plot_reliability(
                out / f"reliability_{split}.png",
                report,
                model.tasks,
                title=f"{split}: final prediction, before and after temperature scaling",
            )
    write_json(out / CALIBRATION_FILE, content)
    return content


def write_submissions(
    out: Path, predictions: Mapping[str, Predictions], model, format_name: str | None
) -> None:
    """``submission_<split>.csv`` of a single-task model's final probabilities, per evaluated split."""
    from mmfuse.evaluation.submission import submission_id_column, write_submission

    task = model.tasks[0]
    id_column = submission_id_column(format_name)
    for split, split_predictions in predictions.items():
        final = final_probabilities(split_predictions, model.head_weights_dict)[task.name]
        write_submission(
            out / SUBMISSION_FILE.format(split=split),
            split_predictions.case_ids,
            final,
            task,
            id_column=id_column,
        )


def predict_splits(
    model, data_section: Mapping, splits: Sequence[str], **options
) -> tuple[dict[str, Predictions], dict[str, dict]]:
    """Each split's uncalibrated predictions and the record of its data (:func:`data_record`).

    ``options`` are :func:`predict_split`'s; the raw softmax is kept so temperatures can be fitted on it
    and the calibration report can show the model before and after them.
    """
    raw = {
        split: predict_split(
            model, evaluation_dataset(model, data_section, split), calibrated=False, **options
        )
        for split in dict.fromkeys(splits)
    }
    return raw, {split: data_record(data_section, split, p) for split, p in raw.items()}


def write_reports(
    out: Path,
    raw: Mapping[str, Predictions],
    predictions: Mapping[str, Predictions],
    model,
    records: Mapping[str, Mapping],
    *,
    fitted_on: str | None,
    plots: bool = True,
    bootstrap: BootstrapOptions | None = None,
) -> tuple[dict, dict]:
    """``calibration.json`` and each split's predictions and figures for the splits of ``raw``.

    Returns ``(metrics, calibration)``: the content of ``metrics.json`` (each split's report, the head
    weights, the data records), which the caller writes once its own keys are in, and of ``calibration.json``.
    """
    calibration = write_calibration(
        out, raw, predictions, model, fitted_on=fitted_on, plots=plots, data=records
    )
    weights = model.head_weights_dict
    metrics: dict = {
        split: write_split_report(
            out, split, predictions[split], model.tasks, weights, plots=plots, bootstrap=bootstrap
        )
        for split in raw
    }
    metrics["head_weights"] = weights
    metrics[DATA_KEY] = {split: records[split] for split in raw}
    return metrics, calibration


def _prediction_options(config: Mapping, device: torch.device | str, progress: bool | None) -> dict:
    """:func:`predict_split`'s options from a run config: its TTA, batch size, workers, AMP and memory layout."""
    evaluation, train = config["evaluation"], config["train"]
    return dict(
        device=device,
        tta=evaluation["tta"],
        batch_size=evaluation["batch_size"],
        num_workers=config["data"]["num_workers"],
        amp=train["amp"],
        channels_last=train["channels_last"] and torch.device(device).type == "cuda",
        progress=progress,
    )


def _weight_search_record(
    search: Mapping, result: WeightSearchResult | None, split: str, record: Mapping
) -> dict:
    """The content of ``weight_search.json``: the search's settings, weights, scores and surface."""
    if result is None:
        return {
            "split": split,
            "skipped": "single-modality model: one head, no weights to search",
            DATA_KEY: record,
        }
    reference = search.get("method") == "fusionm4net"
    return {
        "split": split,
        "method": search.get("method", "simplex"),
        "objective": result.objective,
        "combine": result.combine,
        "step": float(search["step"]),
        **({"search_num": int(search["search_num"]), "schedule": search["schedule"]} if reference else {}),
        "weights": result.weights,
        "score": result.score,
        "head_scores": result.head_scores,
        "surface": [{**dict(zip(HEADS, point, strict=True)), "score": v} for point, v in result.surface],
        DATA_KEY: record,
    }


def _tune_run_head_weights(
    model, search: Mapping, predictions: Predictions, out: Path, split: str, record: Mapping
) -> None:
    """The run config's weight search on the validation predictions, stored in ``model`` and ``weight_search.json``."""
    result = tune_head_weights(
        model,
        predictions,
        step=float(search["step"]),
        objective=search["objective"],
        combine=search.get("combine", "probabilities"),
        method=search.get("method", "simplex"),
        search_num=int(search.get("search_num", 20)),
        schedule=search.get("schedule", "linear"),
    )
    write_json(out / WEIGHT_SEARCH_FILE, _weight_search_record(search, result, split, record))


def evaluate_run(
    model,
    config: Mapping,
    out: str | Path,
    *,
    device: torch.device | str = "cpu",
    progress: bool | None = None,
) -> dict:
    """After training: TTA predictions, temperatures and the weight search on the validation split, the report files.

    Temperatures (``evaluation.temperature_scaling``) are fitted first, so the weight search mixes the
    calibrated heads the saved model will use.

    Returns the content of ``metrics.json``: ``{split: {head: report}, "head_weights": {...}, "data": {split:
    record}}`` (see :mod:`mmfuse.evaluation.provenance` for the records).
    """
    out = Path(out)
    evaluation, data = config["evaluation"], config["data"]
    val_split = data["val_split"]
    splits = list(dict.fromkeys(evaluation["splits"]))
    data_section = dataset_options(config)
    options = _prediction_options(config, device, progress)
    raw, records = predict_splits(model, data_section, [val_split, *splits], **options)
    val = raw[val_split]
    scaling = evaluation["temperature_scaling"]
    model.set_temperatures(
        fit_temperatures(val.logits, val.labels, model.tasks, val.auxiliary_present) if scaling else None
    )
    predictions = {split: with_temperatures(p, model.temperatures) for split, p in raw.items()}
    _tune_run_head_weights(
        model, evaluation["weight_search"], predictions[val_split], out, val_split, records[val_split]
    )
    # the searched mode (probabilities or logits) mixes the heads of every report from here on
    raw, predictions = (
        {split: replace(p, combine=model.head_combine) for split, p in group.items()}
        for group in (raw, predictions)
    )
    reported = {split: predictions[split] for split in splits}
    metrics, _ = write_reports(
        out,
        {split: raw[split] for split in splits},
        reported,
        model,
        records,
        fitted_on=val_split if scaling else None,
        plots=evaluation["plots"],
        bootstrap=bootstrap_options(evaluation),
    )
    weights = model.head_weights_dict
    metrics["head_weights"] = {h: round(weights[h], 6) for h in HEADS}  # the model stores float32
    if len(model.tasks) == 1:
        write_submissions(out, reported, model, data.get("format"))
    write_json(out / METRICS_FILE, metrics)
    if evaluation.get("second_stage") and getattr(model, "single_modality", None) is None:
        from mmfuse.evaluation.second_stage import run_second_stage

        run_second_stage(
            model,
            data_section,
            predictions,
            fit_split=val_split,
            splits=[s for s in splits if s != val_split],
            classifier=evaluation["second_stage"],
            train_split=data["train_split"],
            out=out,
        )
    return metrics


def predict_benchmark(
    model,
    data_section: Mapping,
    out: str | Path,
    *,
    device: torch.device | str = "cpu",
    tta: bool | Sequence[str] = False,
    batch_size: int = 64,
) -> Path:
    """The submission file of a format's unlabelled benchmark part, from a single-task model's final prediction.

    ``data_section`` is the run's (its format, metadata, root); the format's ``benchmark_options`` select
    the benchmark part, whose cases are predicted as the run's test split was (temperatures, head weights).
    """
    from mmfuse.data.formats import DEFAULT_FORMAT, get_format
    from mmfuse.evaluation.submission import write_submission

    name = data_section.get("format", DEFAULT_FORMAT)
    fmt = get_format(name)
    if fmt.benchmark_options is None:
        raise UsageError(f"data format {name!r} has no unlabelled benchmark part to predict")
    if len(model.tasks) != 1:
        raise UsageError(
            f"a submission holds one task's probabilities; this model has {len(model.tasks)} tasks"
        )
    config = {k: v for k, v in data_section.items() if k != "cv"} | dict(fmt.benchmark_options)
    dataset = evaluation_dataset(model, config, fmt.benchmark_split, labelled=False)
    predictions = predict_split(model, dataset, device=device, tta=tta, batch_size=batch_size)
    predictions = replace(predictions, combine=model.head_combine)
    task = model.tasks[0]
    final = final_probabilities(predictions, model.head_weights_dict)[task.name]
    return write_submission(out, predictions.case_ids, final, task, id_column=fmt.submission_id_column)
