"""``report.html``: one self-contained page per run directory, readable offline.

Everything comes from the files the run already wrote (``config.yaml``, ``log.csv``, ``metrics.json``,
``weight_search.json``, ``calibration.json``, ``robustness.json``, the PNG figures, ``model/``); figures are
embedded as ``data:`` URIs and the page has no script and no external resource, so it opens the same on a
laptop without network years later. Sections whose source file is missing (an older run, a run trained without
evaluation) say so instead of failing. ``mmfuse report RUN`` rebuilds it.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from mmfuse._version import __version__
from mmfuse.data.split import SPLIT_NAMES
from mmfuse.data.synth.marker import SYNTHETIC_MARKER, is_synthetic
from mmfuse.errors import UsageError
from mmfuse.evaluation.provenance import DATA_KEY, check_same_data
from mmfuse.evaluation.run_files import Field, RunFileError, read_json
from mmfuse.fileio import atomic_write_bytes
from mmfuse.metrics_layout import HEADLINE_METRICS, METRICS_INFO_KEYS

REPORT_FILE = "report.html"
# Points below this percentile of the weight-search scores share the colour scale's lowest colour.
SURFACE_LOW_PERCENTILE = 10
# The page's promise, enforced by the browser too: no script runs and nothing is fetched, whatever a run file holds.
CONTENT_SECURITY_POLICY = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"

_STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;max-width:1200px;padding:1em 2em;
color:#222;line-height:1.4}
h1{font-size:1.6em;border-bottom:2px solid #345;padding-bottom:.2em}h2{font-size:1.3em;margin-top:2em;color:#234}
h3{font-size:1.05em;margin-bottom:.3em}
table{border-collapse:collapse;margin:.5em 0 1em;font-size:.9em}
th,td{border:1px solid #ccc;padding:.2em .6em;text-align:right}th{background:#eef2f6}
td:first-child,th:first-child{text-align:left}
.ci{color:#666;font-size:.85em}.note{color:#555;font-size:.9em}
img{max-width:100%;height:auto;border:1px solid #ddd;margin:.3em 0}
pre{background:#f6f8fa;padding:.8em;overflow-x:auto;font-size:.85em}
nav a{margin-right:1em}summary{cursor:pointer;margin:.4em 0}
.banner{background:#fff4d6;border:1px solid #e0b84c;padding:.6em 1em;margin:.6em 0}
.headline td:first-child{font-weight:600}.meta{color:#444;margin:.2em 0}
"""


def _esc(value) -> str:
    return html.escape(str(value), quote=True)


def _pct(value: float | None) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{100 * value:.1f}"


def _with_ci(value: Field | None, interval: Field | None) -> str:
    """A metric in percent, then its bootstrap interval when the report has one."""
    number = value.fraction() if value is not None else None
    text = _pct(number)
    bounds = interval.interval() if interval is not None else None
    if bounds is not None and number is not None:
        text += f' <span class="ci">[{_pct(bounds[0])}, {_pct(bounds[1])}]</span>'
    return text


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """``rows`` cells are HTML already (escaped by the caller); header cells are escaped here."""
    head = "".join(f"<th>{_esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _image(data: bytes, alt: str) -> str:
    return f'<img alt="{_esc(alt)}" src="data:image/png;base64,{base64.b64encode(data).decode()}">'


def _png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return buffer.getvalue()


def _split_figure(run: Path, kind: str, split: str) -> bytes | None:
    """``run/<kind>_<split>.png`` if it exists; a split name that is not a plain file name never leaves the run."""
    name = f"{kind}_{split}.png"
    if Path(name).name != name or name.startswith("."):
        return None
    path = run / name
    return path.read_bytes() if path.is_file() else None


def _missing(what: str, file: str) -> str:
    return f'<p class="note">No {_esc(what)}: this run has no <code>{_esc(file)}</code>.</p>'


def _data_note(record: Field | None) -> str:
    if record is None:
        return ""
    return (
        f'<p class="note">Data: <code>{_esc(record["root"].text())}</code> ({_esc(record["format"].text())}), '
        f"{record['cases'].integer()} cases, fingerprint <code>{_esc(record['fingerprint'].text()[:19])}</code>.</p>"
    )


# -- sections ---------------------------------------------------------------------------------------------


def _text(path: Path) -> str:
    """A file shown as it is (undecodable bytes replaced: the page shows, it does not interpret)."""
    return path.read_text(encoding="utf-8", errors="replace")


def _config_section(run: Path) -> str:
    parts = []
    if (run / "config.yaml").is_file():
        parts.append(
            f"<details><summary><b>config.yaml</b> (the run's resolved configuration)</summary>"
            f"<pre>{_esc(_text(run / 'config.yaml'))}</pre></details>"
        )
    model_config = run / "model" / "config.json"
    if model_config.is_file():
        parts.append(
            "<details><summary><b>model/config.json</b> (architecture, head weights, temperatures)</summary>"
            f"<pre>{_esc(_text(model_config))}</pre></details>"
        )
    return "".join(parts) or _missing("configuration", "config.yaml")


def _read_csv(path: Path) -> tuple[list[dict], list[str]]:
    """A run's CSV table as its rows and header; a file that is not one is a :class:`RunFileError`."""
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            return list(reader), list(reader.fieldnames or [])
    except (csv.Error, UnicodeDecodeError) as exc:
        raise RunFileError(f"{path}: not a readable CSV table ({exc})") from None


def _read_log(path: Path) -> list[dict[str, float]]:
    """``log.csv`` as numbers, one dict per epoch; every row needs its ``epoch``."""
    rows, header = _read_csv(path)
    if rows and "epoch" not in header:
        raise RunFileError(f"{path}: no 'epoch' column (columns: {', '.join(map(str, header))})")
    parsed = []
    for number, row in enumerate(rows, start=2):
        if None in row:
            raise RunFileError(f"{path}, row {number}: more cells than the header has columns")
        try:
            values = {k: float(v) for k, v in row.items() if v not in (None, "")}
        except ValueError as exc:
            raise RunFileError(f"{path}, row {number}: {exc}") from None
        if not math.isfinite(values.get("epoch", math.nan)):
            raise RunFileError(f"{path}, row {number}: the epoch must be a number, got {row['epoch']!r}")
        parsed.append(values)
    return parsed


def _training_section(run: Path) -> str:
    if not (run / "log.csv").is_file():
        return _missing("training log", "log.csv")
    rows = _read_log(run / "log.csv")
    if not rows:
        return '<p class="note">The training log is empty.</p>'
    from matplotlib.figure import Figure

    epochs = [r["epoch"] for r in rows]
    figure = Figure(figsize=(11, 3.4), layout="constrained")
    losses, rate = figure.add_subplot(1, 2, 1), figure.add_subplot(1, 2, 2)
    for key, style in (
        ("loss", "-"),
        ("loss_primary", "--"),
        ("loss_auxiliary", "--"),
        ("loss_fusion", "--"),
    ):
        if key in rows[0]:
            losses.plot(
                epochs,
                [r.get(key, math.nan) for r in rows],
                style,
                label=key.replace("loss_", "") if "_" in key else "total",
            )
    swa = [r["epoch"] for r in rows if r.get("swa")]
    for axis in (losses, rate):
        if swa:
            axis.axvspan(min(swa) - 0.5, max(swa) + 0.5, color="grey", alpha=0.12, label="SWA")
    losses.set(title="training loss (sum over tasks)", xlabel="epoch", ylabel="loss")
    if losses.get_lines():
        losses.legend(fontsize=8)
    rate.plot(epochs, [r.get("lr", math.nan) for r in rows], color="tab:purple")
    rate.set(title="learning rate", xlabel="epoch", ylabel="lr")
    seconds = math.fsum(r.get("seconds", 0.0) for r in rows)
    speed = [r["pairs_per_s"] for r in rows if "pairs_per_s" in r]
    summary = (
        f"<p>{len(rows)} epochs, {seconds:.0f} s of training"
        + (f", {sum(speed) / len(speed):.0f} image pairs/s on average" if speed else "")
        + (f"; SWA over epochs {min(swa):g}–{max(swa):g}" if swa else "")
        + ".</p>"
    )
    return summary + _image(_png(figure), "training curves")


def _metric_splits(metrics: Field) -> list[tuple[str, Field]]:
    """``metrics.json``'s splits (every key but the head weights and the data records)."""
    return [(split, heads) for split, heads in metrics.items() if split not in METRICS_INFO_KEYS]


def _metrics_section(metrics: Field | None, run: Path) -> str:
    if metrics is None:
        return _missing("metrics", "metrics.json")
    parts = []
    records = metrics.get(DATA_KEY)
    for split, heads in _metric_splits(metrics):
        final = heads["final"]
        parts.append(f"<h3>{_esc(split)}</h3>")
        parts.append(_data_note(records.get(split) if records is not None else None))
        names = heads.keys()
        has_mel = any(head.get("mel") is not None for _, head in heads.items())
        header = ["head", "AVG AUC", "AVG ACC"] + (
            ["MEL AUC", "MEL sensitivity", "MEL specificity"] if has_mel else []
        )
        rows = []
        for name, report in heads.items():
            row = [_esc(name)] + [
                _with_ci(report.get(m), report.get("ci", m)) for m in HEADLINE_METRICS
            ]
            if has_mel:
                row += [
                    _with_ci(report.get("mel", m), report.get("ci", "mel", m))
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
        parts.append(_table(header, rows) + note)
        task_rows, acc_rows = [], []
        for task, entry in final["tasks"].items():
            for cls in entry["classes"].keys():
                cells = [_esc(task), _esc(cls)]
                for name in names:
                    value = heads[name].get("tasks", task, "classes", cls, "auc")
                    if name == "final":
                        cells.append(_with_ci(value, final.get("ci", "tasks", task, "classes", cls, "auc")))
                    else:
                        cells.append(_with_ci(value, None))
                task_rows.append(cells)
            acc_rows.append(
                [_esc(task)]
                + [
                    _with_ci(
                        heads[name].get("tasks", task, "acc"),
                        final.get("ci", "tasks", task, "acc") if name == "final" else None,
                    )
                    for name in names
                ]
            )
        parts.append("<h3>per-class AUC (%)</h3>" + _table(["task", "class", *names], task_rows))
        parts.append("<h3>task accuracy (%)</h3>" + _table(["task", *names], acc_rows))
        parts.append(_isic_table(final))
        for kind, title in (("roc", "ROC curves"), ("confusion", "confusion matrices")):
            figure = _split_figure(run, kind, split)
            if figure is not None:
                parts.append(f"<h3>{title}, final prediction</h3>" + _image(figure, f"{kind} {split}"))
    return "".join(parts) or '<p class="note">metrics.json holds no split.</p>'


ISIC_COLUMNS = (
    ("balanced_accuracy", "balanced acc."),
    ("macro_auc", "macro AUC"),
    ("macro_auc_sens_80", "macro AUC > 80 % sens."),
    ("macro_ap", "macro AP"),
    ("macro_dice", "macro dice"),
)


def _isic_table(final: Field) -> str:
    """The ISIC challenge metrics of the final prediction per task (docs/evaluation.md)."""
    rows = []
    for task, entry in final["tasks"].items():
        if "balanced_accuracy" not in entry:
            continue  # a run evaluated before these metrics existed
        rows.append(
            [_esc(task)] + [_with_ci(entry[k], final.get("ci", "tasks", task, k)) for k, _ in ISIC_COLUMNS]
        )
    if not rows:
        return ""
    return "<h3>ISIC challenge metrics, final prediction (%)</h3>" + _table(
        ["task", *(title for _, title in ISIC_COLUMNS)], rows
    )


def _calibration_section(calibration: Field | None, run: Path) -> str:
    if calibration is None:
        return _missing("calibration report", "calibration.json")
    parts = []
    fitted = calibration.get("fitted_on")
    parts.append(
        f"<p>Temperatures fitted on the <b>{_esc(fitted.text())}</b> split, one per head and task, applied by "
        "<code>predict</code> (off with <code>--no-temperature</code>).</p>"
        if fitted is not None
        else "<p>No temperature scaling was fitted for this run.</p>"
    )
    temperatures = calibration.get("temperatures")
    if temperatures is not None and temperatures.keys():
        tasks = next(per for _, per in temperatures.items()).keys()
        rows = [
            [_esc(head)] + [_temperature(per.get(t)) for t in tasks] for head, per in temperatures.items()
        ]
        parts.append("<h3>temperatures</h3>" + _table(["head", *tasks], rows))
    for split, report in calibration.items():
        if split in ("fitted_on", "temperatures", "ece_bins", DATA_KEY):
            continue
        before, after = report["before"], report["after"]
        rows = [
            [_esc(task), _pct(ece.fraction()), _with_ci(after.get("ece", task), None)]
            for task, ece in before["ece"].items()
        ]
        rows.append(
            [
                "<b>mean</b>",
                f"<b>{_pct(before['mean_ece'].fraction())}</b>",
                f"<b>{_pct(after['mean_ece'].fraction())}</b>",
            ]
        )
        parts.append(
            f"<h3>{_esc(split)}: expected calibration error of the final prediction (%)</h3>"
            + _table(["task", "ECE before", "ECE after"], rows)
        )
        figure = _split_figure(run, "reliability", split)
        if figure is not None:
            parts.append(_image(figure, f"reliability {split}"))
    return "".join(parts)


def _temperature(value: Field | None) -> str:
    return "1.00" if value is None else f"{value.number(1e-6):.2f}"  # absent: the task is left unscaled


def _robustness_section(robustness: Field | None, run: Path) -> str:
    if robustness is None:
        return '<p class="note">Not computed; run <code>mmfuse evaluate RUN --robustness</code>.</p>'
    from mmfuse.evaluation.robustness import MODALITIES

    modalities = [m for m in MODALITIES if m in robustness]
    if not modalities:
        raise robustness.fail(f"an object with the curves of {' or '.join(MODALITIES)}")
    header = ["degradation", "severity"] + [f"{m} {k}" for m in modalities for k in ("AVG AUC", "AVG ACC")]

    def cells(entries: Sequence[Field | None]) -> list[str]:
        return [
            _with_ci(entry.get("final", k) if entry is not None else None, None)
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
            rows.append([_esc(corruption), str(severity), *cells([p["heads"] for p in points])])
    rows.append(["absent", "–", *cells([robustness[m].get("absent") for m in modalities])])
    primary_only = robustness.get("primary_only")
    mode = (
        "the auxiliary images ignored (<code>--primary-only</code>), the primary image degraded"
        if primary_only is not None and primary_only.value is True
        else "one modality degraded"
    )
    parts = [
        f"<p>{_esc(robustness['split'].text())} split, {robustness['cases'].integer()} cases; final prediction "
        f"(%) with {mode}. Per-head curves are in the figure and in <code>robustness.json</code>.</p>",
        _data_note(robustness.get(DATA_KEY)),
        _table(header, rows),
    ]
    figure = run / "robustness.png"
    if figure.is_file():
        parts.append(_image(figure.read_bytes(), "robustness curves"))
    return "".join(parts)


def _weights_section(metrics: Field | None, search: Field | None) -> str:
    if search is None:
        weights = metrics.get("head_weights") if metrics is not None else None
        if weights is None or not weights.keys():
            return _missing("head-weight search", "weight_search.json")
        return _table(["head", "weight"], [[_esc(h), f"{w.number(0, 1):.2f}"] for h, w in weights.items()])
    if "skipped" in search:  # a single-modality model: one head, nothing to weigh
        return f"<p>No search: {_esc(search['skipped'].text())}.</p>"
    weights = {head: value.number(0, 1) for head, value in search["weights"].items()}
    combine = search.get("combine")
    objective = search["objective"].text()
    head_scores = search.get("head_scores")
    parts = [
        f"<p>Searched on the <b>{_esc(search['split'].text())}</b> split, objective <code>{_esc(objective)}</code>, "
        f"heads combined by <code>{_esc(combine.text() if combine is not None else 'probabilities')}</code>, "
        f"grid step {search['step'].number(0, 1):g}: score {_pct(search['score'].fraction())} % (single heads: "
        + ", ".join(
            f"{_esc(h)} {_pct(v.fraction())}"
            for h, v in (head_scores.items() if head_scores is not None else ())
        )
        + ").</p>",
        _table(["head", "weight"], [[_esc(h), f"{w:.2f}"] for h, w in weights.items()]),
    ]
    surface = search.get("surface")
    points = [] if surface is None else [_surface_point(p) for p in surface.list()]
    finite = [p for p in points if p["score"] is not None]
    if finite:
        parts.append(_image(_png(_surface_figure(finite, weights, objective)), "weight search surface"))
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


def _surface_figure(points: list[dict], weights: Mapping[str, float], objective: str):
    from matplotlib.figure import Figure

    figure = Figure(figsize=(5.2, 4.4), layout="constrained")
    axis = figure.add_subplot(1, 1, 1)

    def xy(point):  # barycentric -> an equilateral triangle: primary left, fusion right, auxiliary top
        fusion, auxiliary = point.get("fusion", 0.0), point.get("auxiliary", 0.0)
        return fusion + auxiliary / 2, auxiliary * math.sqrt(3) / 2

    xs, ys = zip(*(xy(p) for p in points), strict=True)
    scores = [100 * p["score"] for p in points]
    # The colours span where the scores are: a few poor corners (a head that learned little) would otherwise
    # stretch the range and paint every point near the best one the same yellow.
    low, high = float(np.percentile(scores, SURFACE_LOW_PERCENTILE)), max(scores)
    dots = axis.scatter(xs, ys, c=scores, cmap="viridis", s=40, vmin=low, vmax=max(high, low + 1e-9))
    figure.colorbar(dots, ax=axis, label=f"{objective} (%)", extend="min" if min(scores) < low else "neither")
    bx, by = xy(weights)
    axis.scatter([bx], [by], marker="*", s=220, color="red", edgecolor="white", label="chosen")
    for label, (x, y) in (
        ("primary", (0, 0)),
        ("fusion", (1, 0)),
        ("auxiliary", (0.5, math.sqrt(3) / 2)),
    ):
        axis.annotate(
            label, (x, y), textcoords="offset points", xytext=(0, -12 if y == 0 else 6), ha="center"
        )
    axis.set_aspect("equal")
    axis.set_axis_off()
    axis.legend(loc="upper right", fontsize=8)
    axis.set_title("weight search surface", pad=18)
    return figure


def _cost_section(run: Path) -> str:
    model_dir = run / "model"
    if not (model_dir / "config.json").is_file():
        return _missing("saved model", "model/config.json")
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from mmfuse.hub import from_pretrained
    from mmfuse.params import count_parameters

    model = from_pretrained(model_dir).eval()
    # Top-level parts as the model holds them (a shared encoder or a metadata branch shows up as such).
    counts = {name.replace("_", " "): count_parameters(child) for name, child in model.named_children()}
    total = count_parameters(model)
    rows = [[_esc(n), f"{c / 1e6:.3f}", f"{100 * c / total:.1f}"] for n, c in counts.items() if c]
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
    cost = [[_esc(n), f"{f / 1e9:.3f}"] for n, f in flops.items()]
    return (
        "<h3>parameters (millions)</h3>"
        + _table(["part", "parameters (M)", "share (%)"], rows)
        + f"<h3>inference cost at {size} px, one image pair</h3>"
        + _table(["input", "GFLOPs"], cost)
        + '<p class="note">FLOPs counted by torch.utils.flop_counter (a multiply-add is 2 FLOPs), without TTA; '
        "TTA multiplies them by the number of views. Training time is in the training section.</p>"
    )


# -- the first screen: what was trained on what, and how it scored -------------------------------------


def _model_name(model_config: Field | None) -> tuple[str, list[str]]:
    """The preset (else the fusion block) and the backbones, from ``model/config.json``."""
    if model_config is None:
        return "model", []
    name = model_config.get("preset") or model_config.get("fusion")
    backbones = [model_config.get(k) for k in ("primary", "auxiliary")]
    return (name.text() if name is not None else "model"), [b.text() for b in backbones if b is not None]


def _data_records(metrics: Field | None) -> list[tuple[str, Field]]:
    records = metrics.get(DATA_KEY) if metrics is not None else None
    return [] if records is None else list(records.items())


def _split_sizes(run: Path, metrics: Field | None) -> dict[str, int]:
    """Cases per split: ``splits.csv`` (every split the run made), else the evaluated splits' records."""
    path = run / "splits.csv"  # written by training, as config.yaml and log.csv are
    if path.is_file():
        rows, header = _read_csv(path)
        if "split" not in header:
            raise RunFileError(f"{path}: no 'split' column (columns: {', '.join(map(str, header))})")
        counts = Counter(str(row["split"]) for row in rows)
        order = [*SPLIT_NAMES, *sorted(set(counts) - set(SPLIT_NAMES))]  # train, valid, test first
        return {split: counts[split] for split in order if counts[split]}
    return {split: record["cases"].integer() for split, record in _data_records(metrics)}


def _trained_on(run: Path) -> str | None:
    """When the model was saved (the run's end), as a UTC date: a rebuilt page shows the same date."""
    for path in (run / "model" / "config.json", run / "metrics.json", run / "config.yaml"):
        if path.is_file():
            return datetime.fromtimestamp(path.stat().st_mtime, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return None


def _synthetic_banner(records: list[tuple[str, Field]]) -> str:
    roots = {record["root"].text() for _, record in records}
    synthetic = sorted(root for root in roots if is_synthetic(root))
    if not synthetic:
        return ""
    return (
        '<p class="banner" id="synthetic"><b>Synthetic data.</b> This run was evaluated on a release written by '
        f"<code>mmfuse data synth</code> (<code>{_esc(SYNTHETIC_MARKER)}</code> in "
        f"<code>{_esc(synthetic[0])}</code>): its numbers show that the pipeline works, not how the model "
        "does on real lesions.</p>"
    )


def _headline_split(metrics: Field) -> str | None:
    splits = [split for split, _ in _metric_splits(metrics)]
    return "test" if "test" in splits else (splits[-1] if splits else None)


def _headline(metrics: Field | None, search: Field | None) -> str:
    """One table: each head's weight and validation score from the search beside its held-out metrics."""
    if metrics is None:
        return _missing("results", "metrics.json")
    split = _headline_split(metrics)
    if split is None:
        return '<p class="note">metrics.json holds no split.</p>'
    heads = metrics[split]
    searched = search is not None and "skipped" not in search
    weights = search["weights"] if searched else metrics.get("head_weights")
    scores = search.get("head_scores") if searched else None
    has_mel = heads["final"].get("mel") is not None
    header = ["head", "weight"]
    if searched:
        objective = search["objective"].text()
        header.append(f"{search['split'].text()} {objective.replace('_', ' ').upper()} (search)")
    header += [f"{split} AVG AUC", f"{split} AVG ACC"] + ([f"{split} MEL AUC"] if has_mel else [])
    rows = []
    final_first = sorted(heads.items(), key=lambda item: item[0] != "final")  # the prediction, then its heads
    for name, report in final_first:
        weight = weights.get(name) if weights is not None else None
        row = [_esc(name), "–" if weight is None else f"{weight.number(0, 1):.2f}"]
        if searched:
            score = search["score"] if name == "final" else (scores.get(name) if scores is not None else None)
            row.append(_with_ci(score, None))
        row += [_with_ci(report.get(m), report.get("ci", m)) for m in HEADLINE_METRICS]
        if has_mel:
            row.append(_with_ci(report.get("mel", "auc"), report.get("ci", "mel", "auc")))
        rows.append(row)
    chosen = ""
    if searched:
        combine = search.get("combine")
        chosen = (
            f"<p>The weight search on the <b>{_esc(search['split'].text())}</b> split chose "
            + ", ".join(f"{_esc(h)} <b>{w.number(0, 1):.2f}</b>" for h, w in search["weights"].items())
            + f"; the final prediction mixes the heads' {_esc(combine.text() if combine else 'probabilities')}"
            " with these weights.</p>"
        )
    elif search is not None:
        chosen = f"<p>No weight search: {_esc(search['skipped'].text())}.</p>"
    ci = heads["final"].get("ci")
    note = (
        f'<p class="note">Percent; brackets: {100 * ci["level"].number(0, 1):.0f} % bootstrap intervals over the '
        f"{_esc(split)} cases. Per-class, per-task and ISIC metrics are under Metrics.</p>"
        if ci is not None
        else '<p class="note">Percent; this run has no bootstrap intervals.</p>'
    )
    return chosen + _table(header, rows).replace("<table>", '<table class="headline">', 1) + note


def _overview(
    run: Path, metrics: Field | None, search: Field | None, model_config: Field | None
) -> tuple[str, str]:
    """The page's title and its first screen: what, on which data, when, whether synthetic, the results."""
    records = _data_records(metrics)
    model, backbones = _model_name(model_config)
    if records:
        first = records[0][1]
        data = f"{Path(first['root'].text()).name} ({first['format'].text()} format)"
    else:
        data = "unknown data"
    title = f"{model} on {data}"
    sizes = _split_sizes(run, metrics)
    facts = [f"backbones {_esc(' + '.join(backbones))}"] if backbones else []
    if sizes:
        facts.append(", ".join(f"{_esc(split)} {count}" for split, count in sizes.items()) + " cases")
    when = _trained_on(run)
    if when:
        facts.append(f"trained {_esc(when)}")
    facts.append(f"run folder <code>{_esc(run.resolve().name)}</code>")
    first_screen = (
        f"<h1>{_esc(title)}</h1>"
        f'<p class="meta">{" · ".join(facts)}</p>'
        + _synthetic_banner(records)
        + '<section id="results"><h2>Results</h2>'
        + _headline(metrics, search)
        + "</section>"
    )
    return title, first_screen


def _check_one_data(metrics: Field | None, calibration: Field | None, robustness: Field | None) -> None:
    """Refuse a page that would show results of different data side by side (files without records pass)."""
    records = metrics.get(DATA_KEY) if metrics is not None else None
    if records is None:
        return
    others = (
        []
        if calibration is None or calibration.get(DATA_KEY) is None
        else list(calibration[DATA_KEY].items())
    )
    if robustness is not None and robustness.get(DATA_KEY) is not None:
        others.append((robustness[DATA_KEY]["split"].text(), robustness[DATA_KEY]))
    for split, record in others:
        reference = records.get(split)
        if reference is not None:
            check_same_data(reference.mapping(), str(metrics.file), record.mapping(), str(record.file))


def build_report(run: str | Path) -> str:
    """The HTML of ``run``'s report (see the module docstring)."""
    run = Path(run)
    if not run.is_dir():
        raise FileNotFoundError(f"run directory not found: {run}")
    if not any((run / name).exists() for name in ("config.yaml", "metrics.json", "log.csv", "model")):
        seeds = sorted(p.name for p in run.glob("seed_*") if p.is_dir())
        hint = f"; a --seeds folder has one report per seed, e.g. {run / seeds[0]}" if seeds else ""
        raise UsageError(
            f"{run} is not a training run directory (no config.yaml, metrics.json, log.csv or model/){hint}"
        )
    metrics = read_json(run / "metrics.json")
    search = read_json(run / "weight_search.json")
    calibration = read_json(run / "calibration.json")
    robustness = read_json(run / "robustness.json")
    _check_one_data(metrics, calibration, robustness)
    page_title, first_screen = _overview(run, metrics, search, read_json(run / "model" / "config.json"))
    sections = [
        ("metrics", "Metrics", _metrics_section(metrics, run)),
        ("weights", "Head weights", _weights_section(metrics, search)),
        ("training", "Training", _training_section(run)),
        ("calibration", "Calibration", _calibration_section(calibration, run)),
        ("robustness", "Robustness", _robustness_section(robustness, run)),
        ("cost", "Parameters and cost", _cost_section(run)),
        ("config", "Configuration", _config_section(run)),
    ]
    nav = "".join(f'<a href="#{key}">{_esc(title)}</a>' for key, title, _ in sections)
    body = "".join(
        f'<section id="{key}"><h2>{_esc(title)}</h2>{content}</section>' for key, title, content in sections
    )
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>mmfuse run report: {_esc(page_title)}</title>'
        f'<meta http-equiv="Content-Security-Policy" content="{CONTENT_SECURITY_POLICY}">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><link rel="icon" href="data:,"><style>{_STYLE}</style></head>'
        f"<body>{first_screen}<nav>{nav}</nav>{body}"
        f'<p class="note">Written by mmfuse {_esc(__version__)} from the files of this run directory.</p>'
        "</body></html>\n"
    )


def write_report(run: str | Path) -> Path:
    """Write ``run/report.html`` (atomically) and return its path."""
    run = Path(run)
    page = build_report(run)
    path = run / REPORT_FILE
    atomic_write_bytes(path, page.encode("utf-8"))
    return path
