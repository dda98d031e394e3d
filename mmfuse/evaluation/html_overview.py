"""The first screen of ``report.html``: what was trained on which data and when, whether the data was
synthetic, and one table of how each head scored (its searched weight beside its held-out metrics)."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

from mmfuse.data.split import SPLIT_NAMES
from mmfuse.data.synth.marker import SYNTHETIC_MARKER, is_synthetic
from mmfuse.evaluation.html_blocks import esc, missing_note, table, with_ci
from mmfuse.evaluation.html_sections import report_splits
from mmfuse.evaluation.provenance import DATA_KEY
from mmfuse.evaluation.run_files import Field, RunFileError, read_csv_table
from mmfuse.metrics_layout import HEADLINE_METRICS


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
        rows, header = read_csv_table(path)
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
        f"<code>mmfuse data synth</code> (<code>{esc(SYNTHETIC_MARKER)}</code> in "
        f"<code>{esc(synthetic[0])}</code>): its numbers show that the pipeline works, not how the model "
        "does on real lesions.</p>"
    )


def _headline_split(metrics: Field) -> str | None:
    splits = [split for split, _ in report_splits(metrics)]
    return "test" if "test" in splits else (splits[-1] if splits else None)


def _headline(metrics: Field | None, search: Field | None) -> str:
    """One table: each head's weight and validation score from the search beside its held-out metrics."""
    if metrics is None:
        return missing_note("results", "metrics.json")
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
        row = [esc(name), "–" if weight is None else f"{weight.number(0, 1):.2f}"]
        if searched:
            score = search["score"] if name == "final" else (scores.get(name) if scores is not None else None)
            row.append(with_ci(score, None))
        row += [with_ci(report.get(m), report.get("ci", m)) for m in HEADLINE_METRICS]
        if has_mel:
            row.append(with_ci(report.get("mel", "auc"), report.get("ci", "mel", "auc")))
        rows.append(row)
    chosen = ""
    if searched:
        combine = search.get("combine")
        chosen = (
            f"<p>The weight search on the <b>{esc(search['split'].text())}</b> split chose "
            + ", ".join(f"{esc(h)} <b>{w.number(0, 1):.2f}</b>" for h, w in search["weights"].items())
            + f"; the final prediction mixes the heads' {esc(combine.text() if combine else 'probabilities')}"
            " with these weights.</p>"
        )
    elif search is not None:
        chosen = f"<p>No weight search: {esc(search['skipped'].text())}.</p>"
    ci = heads["final"].get("ci")
    note = (
        f'<p class="note">Percent; brackets: {100 * ci["level"].number(0, 1):.0f} % bootstrap intervals over the '
        f"{esc(split)} cases. Per-class, per-task and ISIC metrics are under Metrics.</p>"
        if ci is not None
        else '<p class="note">Percent; this run has no bootstrap intervals.</p>'
    )
    return chosen + table(header, rows).replace("<table>", '<table class="headline">', 1) + note


def overview(
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
    facts = [f"backbones {esc(' + '.join(backbones))}"] if backbones else []
    if sizes:
        facts.append(", ".join(f"{esc(split)} {count}" for split, count in sizes.items()) + " cases")
    when = _trained_on(run)
    if when:
        facts.append(f"trained {esc(when)}")
    facts.append(f"run folder <code>{esc(run.resolve().name)}</code>")
    first_screen = (
        f"<h1>{esc(title)}</h1>"
        f'<p class="meta">{" · ".join(facts)}</p>'
        + _synthetic_banner(records)
        + '<section id="results"><h2>Results</h2>'
        + _headline(metrics, search)
        + "</section>"
    )
    return title, first_screen
