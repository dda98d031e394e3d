"""The figures of ``report.html``: the ones it draws from the run's numbers (training curves, the weight
search surface) and the PNGs the run already wrote (ROC curves, confusion matrices, reliability, robustness),
all as PNG bytes for :func:`mmfuse.evaluation.html_blocks.embedded_png`.

Figures are ``matplotlib.figure.Figure`` objects, never pyplot's global state, so building a page leaves
nothing open behind it.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np

# Points below this percentile of the weight-search scores share the colour scale's lowest colour.
SURFACE_LOW_PERCENTILE = 10
# The training log's loss columns and their line styles: the total, then each head's.
LOSS_CURVES = (("loss", "-"), ("loss_primary", "--"), ("loss_auxiliary", "--"), ("loss_fusion", "--"))


def png_bytes(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return buffer.getvalue()


def run_figure(run: Path, kind: str, split: str) -> bytes | None:
    """``run/<kind>_<split>.png`` if it exists; a split name that is not a plain file name never leaves the run."""
    name = f"{kind}_{split}.png"
    if Path(name).name != name or name.startswith("."):
        return None
    path = run / name
    return path.read_bytes() if path.is_file() else None


def training_figure(rows: list[dict[str, float]], swa: list[float]):
    """The losses (total and per head) beside the learning rate, per epoch of ``log.csv``; SWA epochs shaded."""
    from matplotlib.figure import Figure

    epochs = [r["epoch"] for r in rows]
    figure = Figure(figsize=(11, 3.4), layout="constrained")
    losses, rate = figure.add_subplot(1, 2, 1), figure.add_subplot(1, 2, 2)
    for key, style in LOSS_CURVES:
        if key in rows[0]:
            losses.plot(
                epochs,
                [r.get(key, math.nan) for r in rows],
                style,
                label=key.replace("loss_", "") if "_" in key else "total",
            )
    for axis in (losses, rate):
        if swa:
            axis.axvspan(min(swa) - 0.5, max(swa) + 0.5, color="grey", alpha=0.12, label="SWA")
    losses.set(title="training loss (sum over tasks)", xlabel="epoch", ylabel="loss")
    if losses.get_lines():
        losses.legend(fontsize=8)
    rate.plot(epochs, [r.get("lr", math.nan) for r in rows], color="tab:purple")
    rate.set(title="learning rate", xlabel="epoch", ylabel="lr")
    return figure


def surface_figure(points: list[dict], weights: Mapping[str, float], objective: str):
    """Every searched point of the head-weight simplex coloured by its score (in percent), the chosen one a star."""
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
