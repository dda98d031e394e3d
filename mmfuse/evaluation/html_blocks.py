"""The building blocks of ``report.html``: escaping, percentages with their intervals, tables, embedded PNGs
and the notes a section shows in place of a missing file.

Every value a run file holds reaches the page through :func:`esc` (or a number formatted here), so no file
can add markup; callers pass table cells that are HTML already.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Sequence

from mmfuse.evaluation.run_files import Field


def esc(value) -> str:
    """``value`` as HTML text, quotes included (safe inside an attribute too)."""
    return html.escape(str(value), quote=True)


def percent(value: float | None) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{100 * value:.1f}"


def with_ci(value: Field | None, interval: Field | None) -> str:
    """A metric in percent, then its bootstrap interval when the report has one."""
    number = value.fraction() if value is not None else None
    text = percent(number)
    bounds = interval.interval() if interval is not None else None
    if bounds is not None and number is not None:
        text += f' <span class="ci">[{percent(bounds[0])}, {percent(bounds[1])}]</span>'
    return text


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """``rows`` cells are HTML already (escaped by the caller); header cells are escaped here."""
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def embedded_png(data: bytes, alt: str) -> str:
    """An ``<img>`` whose PNG travels inside the page (a ``data:`` URI): nothing is fetched."""
    return f'<img alt="{esc(alt)}" src="data:image/png;base64,{base64.b64encode(data).decode()}">'


def missing_note(what: str, file: str) -> str:
    return f'<p class="note">No {esc(what)}: this run has no <code>{esc(file)}</code>.</p>'


def data_note(record: Field | None) -> str:
    """One line naming the data a split was evaluated on (its record in ``metrics.json``)."""
    if record is None:
        return ""
    return (
        f'<p class="note">Data: <code>{esc(record["root"].text())}</code> ({esc(record["format"].text())}), '
        f"{record['cases'].integer()} cases, fingerprint <code>{esc(record['fingerprint'].text()[:19])}</code>.</p>"
    )
