"""Robustness curves: the test split re-evaluated with one modality degraded (or absent), per head.

For each modality in turn (auxiliary first: the paper's claim is that it is supplementary), each corruption
of :mod:`mmfuse.data.degrade` at severities 1–5, then the modality removed altogether: ``absent`` auxiliary
means the primary branch answers alone (as :meth:`FusionModel.predict` does without it), ``absent`` primary
that the auxiliary branch does. Every point reports ``avg_auc`` and ``avg_acc`` of each head present and of the
final prediction (Eq. 4 with the model's weights and temperatures). Severity 0 is the clean split.

With ``primary_only`` (``evaluate --robustness --primary-only``) the auxiliary images are ignored at every
point, as they are for the metrics: only the primary modality is degraded, and it has no ``absent`` point
(nothing would be left to answer). The result records the setting (``primary_only``) and the data it was
computed on (``data``, see :mod:`mmfuse.evaluation.provenance`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from mmfuse.data.degrade import CORRUPTIONS, SEVERITIES, DegradedAugmenter
from mmfuse.errors import UsageError
from mmfuse.evaluation.report import split_metrics
from mmfuse.metrics_layout import HEADLINE_METRICS
from mmfuse.plots import save_figure

MODALITIES = ("auxiliary", "primary")
ROBUSTNESS_FILE = "robustness.json"
ROBUSTNESS_FIGURE = "robustness.png"
CURVE_HEADS = ("primary", "auxiliary", "fusion", "final")


def _summary(metrics: Mapping[str, Mapping]) -> dict[str, dict[str, float]]:
    return {head: {"avg_auc": r["avg_auc"], "avg_acc": r["avg_acc"]} for head, r in metrics.items()}


def _checked_choices(
    modalities: Sequence[str] | None, corruptions: Sequence[str] | None, primary_only: bool
) -> tuple[Sequence[str], list[str]]:
    """The modalities to degrade (both, or the primary alone with ``primary_only``) and the corruptions."""
    if modalities is None:
        modalities = ("primary",) if primary_only else MODALITIES
    if primary_only and "auxiliary" in modalities:
        raise UsageError(
            "with primary_only the auxiliary images are ignored: degrading them would measure nothing"
        )
    corruptions = list(CORRUPTIONS) if corruptions is None else list(corruptions)
    for name in corruptions:
        if name not in CORRUPTIONS:
            raise UsageError(f"unknown corruption {name!r}; available: {list(CORRUPTIONS)}")
    for modality in modalities:
        if modality not in MODALITIES:
            raise UsageError(f"unknown modality {modality!r}; expected one of {list(MODALITIES)}")
    return modalities, corruptions


def _degraded(dataset, modality: str, corruption: str, severity: int, seed: int):
    """``dataset`` with ``modality``'s images degraded by ``corruption`` at ``severity``."""
    attribute = f"{modality}_augmenter"
    setattr(dataset, attribute, DegradedAugmenter(getattr(dataset, attribute), corruption, severity, seed))
    return dataset


def _modality_curves(
    evaluate: Callable[[Any, str], dict],
    fresh_dataset: Callable[[], Any],
    modality: str,
    corruptions: Sequence[str],
    severities: Sequence[int],
    seed: int,
) -> dict[str, list[dict]]:
    """``{corruption: [{"severity", "heads"}, ...]}``: ``modality`` degraded by each corruption at each severity."""
    curves = {}
    for corruption in corruptions:
        points = []
        for severity in severities:
            dataset = _degraded(fresh_dataset(), modality, corruption, severity, seed)
            what = f"{modality} {corruption} severity {severity}"
            points.append({"severity": int(severity), "heads": evaluate(dataset, what)})
        curves[corruption] = points
    return curves


def robustness_curves(
    model,
    data_section: Mapping,
    split: str = "test",
    *,
    device: torch.device | str = "cpu",
    tta: bool = False,
    batch_size: int = 64,
    seed: int = 0,
    primary_only: bool = False,
    modalities: Sequence[str] | None = None,
    corruptions: Sequence[str] | None = None,
    severities: Sequence[int] = SEVERITIES,
    progress=None,
) -> dict:
    """``{"clean": {head: {avg_auc, avg_acc}}, "auxiliary": {corruption: [...], "absent": ...}, "primary": ...}``.

    ``modalities`` defaults to both, or to ``("primary",)`` with ``primary_only``.
    """
    from mmfuse.evaluation.evaluate import evaluation_dataset, predict_split
    from mmfuse.evaluation.provenance import DATA_KEY, data_record
    from mmfuse.progress import Steps

    modalities, corruptions = _checked_choices(modalities, corruptions, primary_only)
    weights = model.head_weights_dict
    # The batches of each evaluation draw no bar of their own: one line per evaluation says more.
    options = dict(device=device, tta=tta, batch_size=batch_size, progress=False, primary_only=primary_only)
    absent = 0 if primary_only else 1
    steps = Steps(
        1 + len(modalities) * (len(corruptions) * len(severities) + absent), "robustness", progress=progress
    )

    def evaluate(dataset, what: str, **flags) -> dict:
        predictions = predict_split(model, dataset, **{**options, **flags})
        summary = _summary(split_metrics(predictions, model.tasks, weights))
        steps.step(what)
        return summary

    clean_dataset = evaluation_dataset(model, data_section, split)
    clean = predict_split(model, clean_dataset, **options)
    steps.step("clean")
    result: dict = {
        "split": split,
        "cases": len(clean_dataset),
        DATA_KEY: data_record(data_section, split, clean),
        "primary_only": bool(primary_only),
        "tta": bool(tta),
        "seed": int(seed),
        "head_weights": weights,
        "temperature_scaled": bool(model.temperatures),
        "severities": {
            name: {"parameter": CORRUPTIONS[name][0], "values": list(CORRUPTIONS[name][1])}
            for name in corruptions
        },
        "clean": _summary(split_metrics(clean, model.tasks, weights)),
    }
    for modality in modalities:
        curves = _modality_curves(
            evaluate,
            lambda: evaluation_dataset(model, data_section, split),
            modality,
            corruptions,
            severities,
            seed,
        )
        if not primary_only:  # with primary_only, the primary image absent leaves nothing to answer
            flag = "primary_only" if modality == "auxiliary" else "auxiliary_only"
            curves["absent"] = evaluate(clean_dataset, f"{modality} absent", **{flag: True})
        result[modality] = curves
    steps.close()
    return result


def format_robustness(result: Mapping, head: str = "final") -> str:
    """One row per corruption and severity: ``head``'s AVG AUC and AVG ACC with each modality degraded (%)."""
    modalities = [m for m in MODALITIES if m in result]
    header = f"{'degradation':<20}{'sev':>4}" + "".join(
        f"{m + ' AUC':>15}{m + ' ACC':>15}" for m in modalities
    )
    degraded = (
        "auxiliary images ignored, primary degraded"
        if result.get("primary_only")
        else "one modality degraded"
    )
    lines = [
        f"{result['split']} ({result['cases']} cases), {head} prediction, {degraded} (%)",
        header,
    ]

    def cells(entries: Sequence[Mapping | None]) -> str:
        out = ""
        for entry in entries:
            report = (entry or {}).get(head)
            out += "".join(
                f"{'n/a':>15}" if report is None else f"{100 * report[m]:15.1f}"
                for m in HEADLINE_METRICS
            )
        return out

    lines.append(f"{'clean':<20}{0:>4}" + cells([result["clean"]] * len(modalities)))
    corruptions = list(result["severities"])
    for corruption in corruptions:
        for i, point in enumerate(result[modalities[0]][corruption]):
            entries = [result[m][corruption][i]["heads"] for m in modalities]
            lines.append(f"{corruption:<20}{point['severity']:>4}" + cells(entries))
    lines.append(f"{'absent':<20}{'-':>4}" + cells([result[m].get("absent") for m in modalities]))
    return "\n".join(lines)


def plot_robustness(path: str | Path, result: Mapping) -> Path:
    """One figure: rows = degraded modality × metric, columns = corruptions; a line per head over severity.

    The dotted line of each head's colour is its value with the modality absent.
    """
    from matplotlib.figure import Figure

    modalities = [m for m in MODALITIES if m in result]
    corruptions = list(result["severities"])
    rows = [(m, metric) for m in modalities for metric in HEADLINE_METRICS]
    figure = Figure(figsize=(3.0 * len(corruptions), 2.6 * len(rows)), layout="constrained")
    colours = dict(zip(CURVE_HEADS, ("tab:blue", "tab:orange", "tab:green", "black"), strict=True))
    for r, (modality, metric) in enumerate(rows):
        for c, corruption in enumerate(corruptions):
            axis = figure.add_subplot(len(rows), len(corruptions), r * len(corruptions) + c + 1)
            points = result[modality][corruption]
            for head in CURVE_HEADS:
                xs, ys = [0], [result["clean"].get(head, {}).get(metric)]
                for point in points:
                    report = point["heads"].get(head)
                    xs.append(point["severity"])
                    ys.append(None if report is None else report[metric])
                if all(y is None for y in ys):
                    continue
                axis.plot(
                    xs,
                    [float("nan") if y is None else 100 * y for y in ys],
                    marker="o",
                    markersize=3,
                    color=colours[head],
                    label=head,
                    linewidth=1.5 if head == "final" else 1,
                )
                absent = (result[modality].get("absent") or {}).get(head)
                if absent is not None:
                    axis.axhline(100 * absent[metric], color=colours[head], linestyle=":", linewidth=1)
            label = "AVG AUC" if metric == "avg_auc" else "AVG ACC"
            axis.set(title=f"{modality}: {corruption}", xlabel="severity", ylabel=f"{label} (%)")
            axis.set_xticks(range(0, max(SEVERITIES) + 1))
            if r == 0 and c == 0:
                axis.legend(fontsize=7, loc="lower left")
    return save_figure(figure, Path(path), f"robustness on {result['split']} (dotted: modality absent)")
