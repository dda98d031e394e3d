"""``report.html``: one self-contained page per run directory, readable offline.

Everything comes from the files the run already wrote (``config.yaml``, ``log.csv``, ``metrics.json``,
``weight_search.json``, ``calibration.json``, ``robustness.json``, the PNG figures, ``model/``); figures are
embedded as ``data:`` URIs and the page has no script and no external resource, so it opens the same on a
laptop without network years later. Sections whose source file is missing (an older run, a run trained without
evaluation) say so instead of failing. ``mmfuse report RUN`` rebuilds it.

This module puts the page together; its parts have homes of their own: the first screen
(:mod:`~mmfuse.evaluation.html_overview`), the sections below it (:mod:`~mmfuse.evaluation.html_sections`),
their figures (:mod:`~mmfuse.evaluation.html_figures`) and the HTML they are made of
(:mod:`~mmfuse.evaluation.html_blocks`).
"""

from __future__ import annotations

from pathlib import Path

from mmfuse._version import __version__
from mmfuse.errors import UsageError
from mmfuse.evaluation.html_blocks import esc
from mmfuse.evaluation.html_overview import overview
from mmfuse.evaluation.html_sections import (
    calibration_section,
    config_section,
    cost_section,
    metrics_section,
    robustness_section,
    training_section,
    weights_section,
)
from mmfuse.evaluation.provenance import DATA_KEY, check_same_data
from mmfuse.evaluation.run_files import Field, read_json
from mmfuse.fileio import atomic_write_bytes

REPORT_FILE = "report.html"
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
    page_title, first_screen = overview(run, metrics, search, read_json(run / "model" / "config.json"))
    sections = [
        ("metrics", "Metrics", metrics_section(metrics, run)),
        ("weights", "Head weights", weights_section(metrics, search)),
        ("training", "Training", training_section(run)),
        ("calibration", "Calibration", calibration_section(calibration, run)),
        ("robustness", "Robustness", robustness_section(robustness, run)),
        ("cost", "Parameters and cost", cost_section(run)),
        ("config", "Configuration", config_section(run)),
    ]
    nav = "".join(f'<a href="#{key}">{esc(title)}</a>' for key, title, _ in sections)
    body = "".join(
        f'<section id="{key}"><h2>{esc(title)}</h2>{content}</section>' for key, title, content in sections
    )
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>mmfuse run report: {esc(page_title)}</title>'
        f'<meta http-equiv="Content-Security-Policy" content="{CONTENT_SECURITY_POLICY}">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><link rel="icon" href="data:,"><style>{_STYLE}</style></head>'
        f"<body>{first_screen}<nav>{nav}</nav>{body}"
        f'<p class="note">Written by mmfuse {esc(__version__)} from the files of this run directory.</p>'
        "</body></html>\n"
    )


def write_report(run: str | Path) -> Path:
    """Write ``run/report.html`` (atomically) and return its path."""
    run = Path(run)
    page = build_report(run)
    path = run / REPORT_FILE
    atomic_write_bytes(path, page.encode("utf-8"))
    return path
