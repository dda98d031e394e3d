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
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from mmfuse._version import __version__
from mmfuse.errors import UsageError
from mmfuse.fileio import atomic_write_bytes

REPORT_FILE = "report.html"

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
"""


def _esc(value) -> str:
    return html.escape(str(value), quote=True)


def _pct(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{100 * value:.1f}"


def _with_ci(value, interval) -> str:
    text = _pct(value)
    if interval and interval[0] is not None and text != "n/a":
        text += f' <span class="ci">[{100 * interval[0]:.1f}, {100 * interval[1]:.1f}]</span>'
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


def _read_json(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path}: not valid JSON ({exc})") from None


def _missing(what: str, file: str) -> str:
    return f'<p class="note">No {_esc(what)}: this run has no <code>{_esc(file)}</code>.</p>'


# -- sections ---------------------------------------------------------------------------------------------


def _config_section(run: Path) -> str:
    parts = []
    if (run / "config.yaml").is_file():
        parts.append(
            f"<details open><summary><b>config.yaml</b> (the run's resolved configuration)</summary>"
            f"<pre>{_esc((run / 'config.yaml').read_text())}</pre></details>"
        )
    model_config = run / "model" / "config.json"
    if model_config.is_file():
        parts.append(
            "<details><summary><b>model/config.json</b> (architecture, head weights, temperatures)</summary>"
            f"<pre>{_esc(model_config.read_text())}</pre></details>"
        )
    return "".join(parts) or _missing("configuration", "config.yaml")


def _read_log(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    parsed = []
    for number, row in enumerate(rows, start=2):
        try:
            parsed.append({k: float(v) for k, v in row.items() if v not in (None, "")})
        except ValueError as exc:
            raise UsageError(f"{path}, row {number}: {exc}") from None
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
                [r[key] for r in rows],
                style,
                label=key.replace("loss_", "") if "_" in key else "total",
            )
    swa = [r["epoch"] for r in rows if r.get("swa")]
    for axis in (losses, rate):
        if swa:
            axis.axvspan(min(swa) - 0.5, max(swa) + 0.5, color="grey", alpha=0.12, label="SWA")
    losses.set(title="training loss (sum over tasks)", xlabel="epoch", ylabel="loss")
    losses.legend(fontsize=8)
    rate.plot(epochs, [r.get("lr", math.nan) for r in rows], color="tab:purple")
    rate.set(title="learning rate", xlabel="epoch", ylabel="lr")
    seconds = sum(r.get("seconds", 0.0) for r in rows)
    speed = [r["pairs_per_s"] for r in rows if "pairs_per_s" in r]
    summary = (
        f"<p>{len(rows)} epochs, {seconds:.0f} s of training"
        + (f", {sum(speed) / len(speed):.0f} image pairs/s on average" if speed else "")
        + (f"; SWA over epochs {int(min(swa))}–{int(max(swa))}" if swa else "")
        + ".</p>"
    )
    return summary + _image(_png(figure), "training curves")


def _metrics_section(metrics: Mapping | None, run: Path) -> str:
    if metrics is None:
        return _missing("metrics", "metrics.json")
    parts = []
    for split, heads in metrics.items():
        if not isinstance(heads, Mapping) or "final" not in heads:
            continue
        parts.append(f"<h3>{_esc(split)}</h3>")
        has_mel = any("mel" in r for r in heads.values())
        header = ["head", "AVG AUC", "AVG ACC"] + (
            ["MEL AUC", "MEL sensitivity", "MEL specificity"] if has_mel else []
        )
        rows = []
        for head, report in heads.items():
            ci = report.get("ci", {})
            row = [
                _esc(head),
                _with_ci(report["avg_auc"], ci.get("avg_auc")),
                _with_ci(report["avg_acc"], ci.get("avg_acc")),
            ]
            if has_mel:
                mel, mel_ci = report.get("mel", {}), ci.get("mel", {})
                row += [_with_ci(mel.get(m), mel_ci.get(m)) for m in ("auc", "sensitivity", "specificity")]
            rows.append(row)
        ci = heads["final"].get("ci")
        note = (
            f'<p class="note">Percent; brackets: {100 * ci["level"]:.0f} % bootstrap intervals over the cases '
            f"({ci['resamples']} resamples, seed {ci['seed']}).</p>"
            if ci
            else '<p class="note">Percent; this run has no bootstrap intervals.</p>'
        )
        parts.append(_table(header, rows) + note)
        names = list(heads)
        task_rows = []
        for task, entry in heads["final"]["tasks"].items():
            for cls in entry["classes"]:
                cells = [_esc(task), _esc(cls)]
                for head in names:
                    value = heads[head]["tasks"][task]["classes"][cls]["auc"]
                    interval = heads[head].get("ci", {}).get("tasks", {}).get(task, {}).get("classes", {})
                    cells.append(
                        _with_ci(value, interval.get(cls, {}).get("auc")) if head == "final" else _pct(value)
                    )
                task_rows.append(cells)
        parts.append("<h3>per-class AUC (%)</h3>" + _table(["task", "class", *names], task_rows))
        acc_rows = [
            [_esc(task)]
            + [
                _with_ci(
                    heads[h]["tasks"][task]["acc"],
                    heads[h].get("ci", {}).get("tasks", {}).get(task, {}).get("acc"),
                )
                if h == "final"
                else _pct(heads[h]["tasks"][task]["acc"])
                for h in names
            ]
            for task in heads["final"]["tasks"]
        ]
        parts.append("<h3>task accuracy (%)</h3>" + _table(["task", *names], acc_rows))
        parts.append(_isic_table(heads["final"]))
        for kind, title in (("roc", "ROC curves"), ("confusion", "confusion matrices")):
            figure = run / f"{kind}_{split}.png"
            if figure.is_file():
                parts.append(
                    f"<h3>{title}, final prediction</h3>" + _image(figure.read_bytes(), f"{kind} {split}")
                )
    return "".join(parts) or '<p class="note">metrics.json holds no split.</p>'


ISIC_COLUMNS = (
    ("balanced_accuracy", "balanced acc."),
    ("macro_auc", "macro AUC"),
    ("macro_auc_sens_80", "macro AUC > 80 % sens."),
    ("macro_ap", "macro AP"),
    ("macro_dice", "macro dice"),
)


def _isic_table(final: Mapping) -> str:
    """The ISIC challenge metrics of the final prediction per task (docs/evaluation.md)."""
    rows = []
    for task, entry in final["tasks"].items():
        if "balanced_accuracy" not in entry:
            continue  # a run evaluated before these metrics existed
        intervals = final.get("ci", {}).get("tasks", {}).get(task, {})
        rows.append([_esc(task)] + [_with_ci(entry[k], intervals.get(k)) for k, _ in ISIC_COLUMNS])
    if not rows:
        return ""
    return "<h3>ISIC challenge metrics, final prediction (%)</h3>" + _table(
        ["task", *(title for _, title in ISIC_COLUMNS)], rows
    )


def _calibration_section(calibration: Mapping | None, run: Path) -> str:
    if calibration is None:
        return _missing("calibration report", "calibration.json")
    parts = []
    fitted = calibration.get("fitted_on")
    parts.append(
        f"<p>Temperatures fitted on the <b>{_esc(fitted)}</b> split, one per head and task, applied by "
        "<code>predict</code> (off with <code>--no-temperature</code>).</p>"
        if fitted
        else "<p>No temperature scaling was fitted for this run.</p>"
    )
    temperatures = calibration.get("temperatures") or {}
    if temperatures:
        tasks = list(next(iter(temperatures.values())))
        rows = [[_esc(h)] + [f"{per.get(t, 1.0):.2f}" for t in tasks] for h, per in temperatures.items()]
        parts.append("<h3>temperatures</h3>" + _table(["head", *tasks], rows))
    for split, report in calibration.items():
        if not isinstance(report, Mapping) or "before" not in report:
            continue
        before, after = report["before"], report["after"]
        rows = [[_esc(t), _pct(before["ece"][t]), _pct(after["ece"][t])] for t in before["ece"]]
        rows.append(
            ["<b>mean</b>", f"<b>{_pct(before['mean_ece'])}</b>", f"<b>{_pct(after['mean_ece'])}</b>"]
        )
        parts.append(
            f"<h3>{_esc(split)}: expected calibration error of the final prediction (%)</h3>"
            + _table(["task", "ECE before", "ECE after"], rows)
        )
        figure = run / f"reliability_{split}.png"
        if figure.is_file():
            parts.append(_image(figure.read_bytes(), f"reliability {split}"))
    return "".join(parts)


def _robustness_section(robustness: Mapping | None, run: Path) -> str:
    if robustness is None:
        return '<p class="note">Not computed; run <code>mmfuse evaluate RUN --robustness</code>.</p>'
    from mmfuse.evaluation.robustness import MODALITIES

    modalities = [m for m in MODALITIES if m in robustness]
    header = ["degradation", "severity"] + [f"{m} {k}" for m in modalities for k in ("AVG AUC", "AVG ACC")]

    def cells(entries):
        return [
            _pct((entry or {}).get("final", {}).get(k)) for entry in entries for k in ("avg_auc", "avg_acc")
        ]

    rows = [["clean", "0", *cells([robustness["clean"]] * len(modalities))]]
    for corruption in robustness["severities"]:
        for i, point in enumerate(robustness[modalities[0]][corruption]):
            rows.append(
                [
                    _esc(corruption),
                    str(point["severity"]),
                    *cells([robustness[m][corruption][i]["heads"] for m in modalities]),
                ]
            )
    rows.append(["absent", "–", *cells([robustness[m]["absent"] for m in modalities])])
    parts = [
        f"<p>{_esc(robustness['split'])} split, {robustness['cases']} cases; final prediction (%) with one "
        "modality degraded. Per-head curves are in the figure and in <code>robustness.json</code>.</p>",
        _table(header, rows),
    ]
    figure = run / "robustness.png"
    if figure.is_file():
        parts.append(_image(figure.read_bytes(), "robustness curves"))
    return "".join(parts)


def _weights_section(metrics: Mapping | None, search: Mapping | None) -> str:
    if search is None:
        weights = (metrics or {}).get("head_weights")
        if not weights:
            return _missing("head-weight search", "weight_search.json")
        return _table(["head", "weight"], [[_esc(h), f"{w:.2f}"] for h, w in weights.items()])
    if "skipped" in search:  # a single-modality model: one head, nothing to weigh
        return f"<p>No search: {_esc(search['skipped'])}.</p>"
    weights = search["weights"]
    combine = search.get("combine", "probabilities")
    parts = [
        f"<p>Searched on the <b>{_esc(search['split'])}</b> split, objective <code>{_esc(search['objective'])}</code>, "
        f"heads combined by <code>{_esc(combine)}</code>, "
        f"grid step {search['step']}: score {_pct(search['score'])} % (single heads: "
        + ", ".join(f"{_esc(h)} {_pct(v)}" for h, v in search.get("head_scores", {}).items())
        + ").</p>",
        _table(["head", "weight"], [[_esc(h), f"{w:.2f}"] for h, w in weights.items()]),
    ]
    surface = search.get("surface")
    if surface:
        from matplotlib.figure import Figure

        figure = Figure(figsize=(5.2, 4.4), layout="constrained")
        axis = figure.add_subplot(1, 1, 1)

        def xy(point):  # barycentric -> an equilateral triangle: primary left, fusion right, auxiliary top
            return point["fusion"] + point["auxiliary"] / 2, point["auxiliary"] * math.sqrt(3) / 2

        finite = [p for p in surface if p["score"] is not None and math.isfinite(p["score"])]
        xs, ys = zip(*(xy(p) for p in finite), strict=True)
        dots = axis.scatter(xs, ys, c=[100 * p["score"] for p in finite], cmap="viridis", s=40)
        figure.colorbar(dots, ax=axis, label=f"{search['objective']} (%)")
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
        parts.append(_image(_png(figure), "weight search surface"))
        parts.append(
            '<p class="note">Every grid point of the simplex, coloured by its validation score; each corner is '
            "one head alone, the star the chosen weights.</p>"
        )
    return "".join(parts)


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
    metrics = _read_json(run / "metrics.json")
    search = _read_json(run / "weight_search.json")
    calibration = _read_json(run / "calibration.json")
    robustness = _read_json(run / "robustness.json")
    sections = [
        ("config", "Configuration", _config_section(run)),
        ("training", "Training", _training_section(run)),
        ("metrics", "Metrics", _metrics_section(metrics, run)),
        ("calibration", "Calibration", _calibration_section(calibration, run)),
        ("robustness", "Robustness", _robustness_section(robustness, run)),
        ("weights", "Head weights", _weights_section(metrics, search)),
        ("cost", "Parameters and cost", _cost_section(run)),
    ]
    nav = "".join(f'<a href="#{key}">{_esc(title)}</a>' for key, title, _ in sections)
    body = "".join(
        f'<section id="{key}"><h2>{_esc(title)}</h2>{content}</section>' for key, title, content in sections
    )
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>mmfuse run report: {_esc(run.resolve().name)}</title>'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><link rel="icon" href="data:,"><style>{_STYLE}</style></head>'
        f"<body><h1>Run report: {_esc(run.resolve().name)}</h1>"
        f'<p class="note">Written by mmfuse {_esc(__version__)} from the files of this run directory.</p>'
        f"<nav>{nav}</nav>{body}</body></html>\n"
    )


def write_report(run: str | Path) -> Path:
    """Write ``run/report.html`` (atomically) and return its path."""
    run = Path(run)
    page = build_report(run)
    path = run / REPORT_FILE
    atomic_write_bytes(path, page.encode("utf-8"))
    return path
