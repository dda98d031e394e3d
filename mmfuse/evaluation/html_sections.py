"""The sections of ``report.html`` after its first screen, in page order: metrics, head weights, training,
calibration, robustness, parameters and cost, configuration.

Each takes the run folder or the run file it shows (a :class:`~mmfuse.evaluation.run_files.Field`, ``None``
when the run has no such file) and returns its HTML; a missing file is a note, never a failure.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from mmfuse.evaluation.html_blocks import (
    data_note,
    embedded_png,
    esc,
    missing_note,
    percent,
    table,
    with_ci,
)
from mmfuse.evaluation.html_figures import (
    SURFACE_LOW_PERCENTILE,
    png_bytes,
    run_figure,
    surface_figure,
    training_figure,
)
from mmfuse.evaluation.provenance import DATA_KEY
from mmfuse.evaluation.run_files import Field, read_log
from mmfuse.metrics_layout import HEADLINE_METRICS, metric_splits

ISIC_COLUMNS = (
    ("balanced_accuracy", "balanced acc."),
    ("macro_auc", "macro AUC"),
    ("macro_auc_sens_80", "macro AUC > 80 % sens."),
    ("macro_ap", "macro AP"),
    ("macro_dice", "macro dice"),
)


def report_splits(metrics: Field) -> list[tuple[str, Field]]:
    """``metrics.json``'s splits (every key but the head weights and the data records), as fields."""
    return [(split, metrics[split]) for split in metric_splits(metrics.mapping())]


def metrics_section(metrics: Field | None, run: Path) -> str:
    if metrics is None:
        return missing_note("metrics", "metrics.json")
    parts = []
    records = metrics.get(DATA_KEY)
    for split, heads in report_splits(metrics):
        final = heads["final"]
        parts.append(f"<h3>{esc(split)}</h3>")
        parts.append(data_note(records.get(split) if records is not None else None))
        names = heads.keys()
        has_mel = any(head.get("mel") is not None for _, head in heads.items())
        header = ["head", "AVG AUC", "AVG ACC"] + (
            ["MEL AUC", "MEL sensitivity", "MEL specificity"] if has_mel else []
        )
        rows = []
        for name, report in heads.items():
            row = [esc(name)] + [with_ci(report.get(m), report.get("ci", m)) for m in HEADLINE_METRICS]
            if has_mel:
                row += [
                    with_ci(report.get("mel", m), report.get("ci", "mel", m))
                    for m in ("auc", "sensitivity", "specificity")
                ]
            rows.append(row)
        ci = final.get("ci")
        note = (
            f'<p class="note">Percent; brackets: {100 * ci["level"].number(0, 1):.0f} % bootstrap intervals over '
            f"the cases ({ci['resamples'].integer(1)} resamples, seed {ci['seed'].integer()}).</p>"
            if ci is not None
            else '<p class="note">Percent; this run has no bootstrap intervals.</p>'
        )
        parts.append(table(header, rows) + note)
        task_rows, acc_rows = [], []
        for task, entry in final["tasks"].items():
            for cls in entry["classes"].keys():
                cells = [esc(task), esc(cls)]
                for name in names:
                    value = heads[name].get("tasks", task, "classes", cls, "auc")
                    if name == "final":
                        cells.append(with_ci(value, final.get("ci", "tasks", task, "classes", cls, "auc")))
                    else:
                        cells.append(with_ci(value, None))
                task_rows.append(cells)
            acc_rows.append(
                [esc(task)]
                + [
                    with_ci(
                        heads[name].get("tasks", task, "acc"),
                        final.get("ci", "tasks", task, "acc") if name == "final" else None,
                    )
                    for name in names
                ]
            )
        parts.append("<h3>per-class AUC (%)</h3>" + table(["task", "class", *names], task_rows))
        parts.append("<h3>task accuracy (%)</h3>" + table(["task", *names], acc_rows))
        parts.append(_isic_table(final))
        for kind, title in (("roc", "ROC curves"), ("confusion", "confusion matrices")):
            figure = run_figure(run, kind, split)
            if figure is not None:
                parts.append(f"<h3>{title}, final prediction</h3>" + embedded_png(figure, f"{kind} {split}"))
    return "".join(parts) or '<p class="note">metrics.json holds no split.</p>'


def _isic_table(final: Field) -> str:
    """The ISIC challenge metrics of the final prediction per task (docs/evaluation.md)."""
    rows = []
    for task, entry in final["tasks"].items():
        if "balanced_accuracy" not in entry:
            continue  # a run evaluated before these metrics existed
        rows.append(
            [esc(task)] + [with_ci(entry[k], final.get("ci", "tasks", task, k)) for k, _ in ISIC_COLUMNS]
        )
    if not rows:
        return ""
    return "<h3>ISIC challenge metrics, final prediction (%)</h3>" + table(
        ["task", *(title for _, title in ISIC_COLUMNS)], rows
    )


def weights_section(metrics: Field | None, search: Field | None) -> str:
    if search is None:
        weights = metrics.get("head_weights") if metrics is not None else None
        if weights is None or not weights.keys():
            return missing_note("head-weight search", "weight_search.json")
        return table(["head", "weight"], [[esc(h), f"{w.number(0, 1):.2f}"] for h, w in weights.items()])
    if "skipped" in search:  # a single-modality model: one head, nothing to weigh
        return f"<p>No search: {esc(search['skipped'].text())}.</p>"
    weights = {head: value.number(0, 1) for head, value in search["weights"].items()}
    combine = search.get("combine")
    objective = search["objective"].text()
    head_scores = search.get("head_scores")
    parts = [
        f"<p>Searched on the <b>{esc(search['split'].text())}</b> split, objective <code>{esc(objective)}</code>, "
        f"heads combined by <code>{esc(combine.text() if combine is not None else 'probabilities')}</code>, "
        f"grid step {search['step'].number(0, 1):g}: score {percent(search['score'].fraction())} % (single heads: "
        + ", ".join(
            f"{esc(h)} {percent(v.fraction())}"
            for h, v in (head_scores.items() if head_scores is not None else ())
        )
        + ").</p>",
        table(["head", "weight"], [[esc(h), f"{w:.2f}"] for h, w in weights.items()]),
    ]
    surface = search.get("surface")
    points = [] if surface is None else [_surface_point(p) for p in surface.list()]
    finite = [p for p in points if p["score"] is not None]
    if finite:
        parts.append(
            embedded_png(png_bytes(surface_figure(finite, weights, objective)), "weight search surface")
        )
        parts.append(
            '<p class="note">Every grid point of the simplex, coloured by its validation score; each corner is '
            "one head alone, the star the chosen weights. The colours span the scores from their "
            f"{SURFACE_LOW_PERCENTILE}th percentile to the best; lower points share the darkest colour.</p>"
        )
    return "".join(parts)


def _surface_point(point: Field) -> dict[str, float | None]:
    return {
        **{head: point[head].number(0, 1) for head in ("primary", "auxiliary", "fusion")},
        "score": point["score"].fraction(),
    }


def training_section(run: Path) -> str:
    if not (run / "log.csv").is_file():
        return missing_note("training log", "log.csv")
    rows = read_log(run / "log.csv")
    if not rows:
        return '<p class="note">The training log is empty.</p>'
    swa = [r["epoch"] for r in rows if r.get("swa")]
    figure = training_figure(rows, swa)
    seconds = math.fsum(r.get("seconds", 0.0) for r in rows)
    speed = [r["pairs_per_s"] for r in rows if "pairs_per_s" in r]
    summary = (
        f"<p>{len(rows)} epochs, {seconds:.0f} s of training"
        + (f", {sum(speed) / len(speed):.0f} image pairs/s on average" if speed else "")
        + (f"; SWA over epochs {min(swa):g}–{max(swa):g}" if swa else "")
        + ".</p>"
    )
    return summary + embedded_png(png_bytes(figure), "training curves")


def calibration_section(calibration: Field | None, run: Path) -> str:
    if calibration is None:
        return missing_note("calibration report", "calibration.json")
    parts = []
    fitted = calibration.get("fitted_on")
    parts.append(
        f"<p>Temperatures fitted on the <b>{esc(fitted.text())}</b> split, one per head and task, applied by "
        "<code>predict</code> (off with <code>--no-temperature</code>).</p>"
        if fitted is not None
        else "<p>No temperature scaling was fitted for this run.</p>"
    )
    temperatures = calibration.get("temperatures")
    if temperatures is not None and temperatures.keys():
        tasks = next(per for _, per in temperatures.items()).keys()
        rows = [[esc(head)] + [_temperature(per.get(t)) for t in tasks] for head, per in temperatures.items()]
        parts.append("<h3>temperatures</h3>" + table(["head", *tasks], rows))
    for split, report in calibration.items():
        if split in ("fitted_on", "temperatures", "ece_bins", DATA_KEY):
            continue
        before, after = report["before"], report["after"]
        rows = [
            [esc(task), percent(ece.fraction()), with_ci(after.get("ece", task), None)]
            for task, ece in before["ece"].items()
        ]
        rows.append(
            [
                "<b>mean</b>",
                f"<b>{percent(before['mean_ece'].fraction())}</b>",
                f"<b>{percent(after['mean_ece'].fraction())}</b>",
            ]
        )
        parts.append(
            f"<h3>{esc(split)}: expected calibration error of the final prediction (%)</h3>"
            + table(["task", "ECE before", "ECE after"], rows)
        )
        figure = run_figure(run, "reliability", split)
        if figure is not None:
            parts.append(embedded_png(figure, f"reliability {split}"))
    return "".join(parts)


def _temperature(value: Field | None) -> str:
    return "1.00" if value is None else f"{value.number(1e-6):.2f}"  # absent: the task is left unscaled


def robustness_section(robustness: Field | None, run: Path) -> str:
    if robustness is None:
        return '<p class="note">Not computed; run <code>mmfuse evaluate RUN --robustness</code>.</p>'
    from mmfuse.evaluation.robustness import MODALITIES

    modalities = [m for m in MODALITIES if m in robustness]
    if not modalities:
        raise robustness.fail(f"an object with the curves of {' or '.join(MODALITIES)}")
    header = ["degradation", "severity"] + [f"{m} {k}" for m in modalities for k in ("AVG AUC", "AVG ACC")]

    def cells(entries: Sequence[Field | None]) -> list[str]:
        return [
            with_ci(entry.get("final", k) if entry is not None else None, None)
            for entry in entries
            for k in HEADLINE_METRICS
        ]

    rows = [["clean", "0", *cells([robustness["clean"]] * len(modalities))]]
    for corruption in robustness["severities"].keys():
        curves = [robustness[m][corruption].list() for m in modalities]
        if len({len(points) for points in curves}) != 1:
            raise robustness[modalities[-1]][corruption].fail(
                f"as many severities as {modalities[0]}'s {corruption} curve"
            )
        for points in zip(*curves, strict=True):
            severity = points[0]["severity"].integer(1)
            rows.append([esc(corruption), str(severity), *cells([p["heads"] for p in points])])
    rows.append(["absent", "–", *cells([robustness[m].get("absent") for m in modalities])])
    primary_only = robustness.get("primary_only")
    mode = (
        "the auxiliary images ignored (<code>--primary-only</code>), the primary image degraded"
        if primary_only is not None and primary_only.value is True
        else "one modality degraded"
    )
    parts = [
        f"<p>{esc(robustness['split'].text())} split, {robustness['cases'].integer()} cases; final prediction "
        f"(%) with {mode}. Per-head curves are in the figure and in <code>robustness.json</code>.</p>",
        data_note(robustness.get(DATA_KEY)),
        table(header, rows),
    ]
    figure = run / "robustness.png"
    if figure.is_file():
        parts.append(embedded_png(figure.read_bytes(), "robustness curves"))
    return "".join(parts)


def cost_section(run: Path) -> str:
    model_dir = run / "model"
    if not (model_dir / "config.json").is_file():
        return missing_note("saved model", "model/config.json")
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from mmfuse.hub import from_pretrained
    from mmfuse.params import count_parameters

    model = from_pretrained(model_dir).eval()
    # Top-level parts as the model holds them (a shared encoder or a metadata branch shows up as such).
    counts = {name.replace("_", " "): count_parameters(child) for name, child in model.named_children()}
    total = count_parameters(model)
    rows = [[esc(n), f"{c / 1e6:.3f}", f"{100 * c / total:.1f}"] for n, c in counts.items() if c]
    rows.append(["<b>total</b>", f"<b>{total / 1e6:.3f}</b>", "100.0"])
    size = int(model.preprocessing["img_size"])
    image = torch.zeros(1, 3, size, size)
    flops = {}
    modes = (("both images", {"primary": image, "auxiliary": image}), ("primary only", {"primary": image}))
    single = getattr(model, "single_modality", None)
    if single is not None:  # one branch: the model reads only its own image
        modes = ((f"{single} image", {single: image}),)
    for name, inputs in modes:
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            model(**inputs)
        flops[name] = counter.get_total_flops()
    cost = [[esc(n), f"{f / 1e9:.3f}"] for n, f in flops.items()]
    return (
        "<h3>parameters (millions)</h3>"
        + table(["part", "parameters (M)", "share (%)"], rows)
        + f"<h3>inference cost at {size} px, one image pair</h3>"
        + table(["input", "GFLOPs"], cost)
        + '<p class="note">FLOPs counted by torch.utils.flop_counter (a multiply-add is 2 FLOPs), without TTA; '
        "TTA multiplies them by the number of views. Training time is in the training section.</p>"
    )


def _text(path: Path) -> str:
    """A file shown as it is (undecodable bytes replaced: the page shows, it does not interpret)."""
    return path.read_text(encoding="utf-8", errors="replace")


def config_section(run: Path) -> str:
    parts = []
    if (run / "config.yaml").is_file():
        parts.append(
            f"<details><summary><b>config.yaml</b> (the run's resolved configuration)</summary>"
            f"<pre>{esc(_text(run / 'config.yaml'))}</pre></details>"
        )
    model_config = run / "model" / "config.json"
    if model_config.is_file():
        parts.append(
            "<details><summary><b>model/config.json</b> (architecture, head weights, temperatures)</summary>"
            f"<pre>{esc(_text(model_config))}</pre></details>"
        )
    return "".join(parts) or missing_note("configuration", "config.yaml")
