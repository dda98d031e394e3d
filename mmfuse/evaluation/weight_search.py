"""Eq. 4's head weights, searched on the validation split over a grid on the simplex.

Every point ``(w_primary, w_auxiliary, w_fusion) = (i, j, k) / n`` with ``i + j + k = n`` and
``n = 1 / step`` is tried (231 points at the default step 0.05). The corners are the single heads, so the
chosen weights score at least as well as the best head on the validation split. Ties go to the point
nearest equal weights, which keeps the choice stable when heads agree.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch

from mmfuse.errors import UsageError
from mmfuse.evaluation.metrics import objective as score
from mmfuse.limits import MIN_WEIGHT_STEP
from mmfuse.model import HEADS, mix_head_logits, mix_heads
from mmfuse.tasks import TaskSpec


def simplex_grid(step: float = 0.05) -> list[tuple[float, float, float]]:
    """All weight triples on the simplex at ``step`` resolution (``1 / step`` must be an integer)."""
    if not MIN_WEIGHT_STEP <= step <= 1:  # the grid grows with 1 / step**2
        raise UsageError(f"weight search step must lie in [{MIN_WEIGHT_STEP}, 1], got {step!r}")
    n = round(1 / step)
    if abs(n * step - 1) > 1e-9:
        raise UsageError(f"weight search step must divide 1 evenly, got {step!r}")
    return [(i / n, j / n, (n - i - j) / n) for i in range(n + 1) for j in range(n + 1 - i)]


@dataclass(frozen=True)
class WeightSearchResult:
    """The chosen weights, their validation score, each single head's score, and the objective's name."""

    weights: dict[str, float]
    score: float
    head_scores: dict[str, float]
    objective: str
    # Every grid point tried and its score: the surface the report draws.
    surface: tuple[tuple[tuple[float, float, float], float], ...] = field(default=())
    combine: str = "probabilities"  # how the heads were mixed: what predict() must do with the weights


def search_head_weights(
    probabilities: Mapping[str, Mapping[str, torch.Tensor]],
    labels: torch.Tensor,
    tasks: Sequence[TaskSpec],
    *,
    auxiliary_present: torch.Tensor | None = None,
    step: float = 0.05,
    objective: str = "avg_auc",
    combine: str = "probabilities",
    logits: Mapping[str, Mapping[str, torch.Tensor]] | None = None,
) -> WeightSearchResult:
    """The grid point maximising ``objective`` (``"avg_auc"`` or ``"avg_acc"``) of the mixed prediction.

    ``combine="probabilities"`` mixes the heads' (view-averaged) probabilities, Eq. 4;
    ``combine="logits"`` is FusionM4Net's second stage (``second_stage_fusion_utils.py`` of Tang et al.,
    2022, which the AMMFM paper follows): each TTA view's logits ``[V, N, C]`` (``logits``) are summed
    with the weights, soft-maxed, then averaged over views. With ``objective="avg_acc"`` that is the
    reference's criterion: the mean accuracy of the tasks (8 on Derm7pt).
    """
    if combine not in ("probabilities", "logits"):
        raise UsageError(f"combine must be 'probabilities' or 'logits', got {combine!r}")
    if combine == "logits" and logits is None:
        raise UsageError("combine='logits' needs the per-view logits of every head (logits=)")
    source = logits if combine == "logits" else probabilities
    missing = [h for h in HEADS if h not in source]
    if missing:
        raise UsageError(f"the weight search needs all three heads' probabilities; missing {missing}")
    best: tuple[float, float, tuple[float, float, float]] | None = None
    head_scores = {}
    surface = []
    for point in simplex_grid(step):
        weights = dict(zip(HEADS, point, strict=True))
        value = score(mix(source, weights, auxiliary_present, combine), labels, tasks, objective)
        for head, w in weights.items():
            if w == 1.0:
                head_scores[head] = value
        surface.append((point, value))
        spread = sum((w - 1 / 3) ** 2 for w in point)
        if value != value:  # NaN (no class with both outcomes): never preferred
            value = float("-inf")
        if best is None or value > best[0] or (value == best[0] and spread < best[1]):
            best = (value, spread, point)
    assert best is not None
    return WeightSearchResult(
        dict(zip(HEADS, best[2], strict=True)), best[0], head_scores, objective, tuple(surface), combine
    )


def mix(
    source: Mapping[str, Mapping[str, torch.Tensor]],
    weights: Mapping[str, float],
    auxiliary_present: torch.Tensor | None,
    combine: str,
) -> dict[str, torch.Tensor]:
    """The final probabilities: Eq. 4 on probabilities, or FusionM4Net's mix of per-view logits."""
    if combine == "logits":
        return {t: p.mean(dim=0) for t, p in mix_head_logits(source, weights, auxiliary_present).items()}
    return mix_heads(source, weights, auxiliary_present)
