"""Eq. 4's head weights, searched on the validation split.

``method="simplex"`` (ours, the default): every point ``(w_primary, w_auxiliary, w_fusion) = (i, j, k) / n``
with ``i + j + k = n`` and ``n = 1 / step`` is tried (231 points at the default step 0.05). The corners are
the single heads, so the chosen weights score at least as well as the best head on the validation split.
Ties go to the point nearest equal weights, which keeps the choice stable when heads agree.

``method="fusionm4net"``: the candidates FusionM4Net's second stage tries (``find_best_threshold`` in
``second_stage_fusion_utils.py`` of Tang et al., 2022), in its order, scored as it scores them. Its three
nested loops run over one list of weights (``np.linspace(0.05, 1, search_num)`` or a cosine-annealed list)
and skip triples summing above 1, but renormalise *their own loop variables* inside the innermost loop, so
a renormalised outer weight is reused by the iterations after it: the path visits a small, path-dependent
subset of the simplex (for ``search_num=20``: 38 distinct triples for ``linear``, the fusion weight never
above 1/3; 597 to six decimals for ``cosine``). The first triple with the strictly highest mean task accuracy of the
arg-max of the weighted raw logits wins.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from mmfuse.errors import UsageError
from mmfuse.evaluation.metrics import objective as score
from mmfuse.head_mixing import HEAD_COMBINE_MODES, HEADS, mix_heads
from mmfuse.limits import MIN_WEIGHT_STEP
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


METHODS = ("simplex", "fusionm4net")
FUSIONM4NET_SCHEDULES = ("linear", "cosine")


def fusionm4net_weight_list(search_num: int = 20, schedule: str = "linear") -> list[float]:
    """The reference's list of weights: ``linspace(0.05, 1, n)`` or ``(cos(π·e/n) + 1) / 2`` for e < n."""
    if isinstance(search_num, bool) or not isinstance(search_num, int) or search_num < 1:
        raise UsageError(f"search_num must be a positive integer, got {search_num!r}")
    if schedule == "linear":
        return [float(w) for w in np.linspace(0.05, 1, num=search_num)]
    if schedule == "cosine":
        return [float(0.5 * (np.cos(np.pi * e / search_num) + 1)) for e in range(search_num)]
    raise UsageError(f"schedule must be one of {list(FUSIONM4NET_SCHEDULES)}, got {schedule!r}")


def fusionm4net_candidates(
    search_num: int = 20, schedule: str = "linear"
) -> list[tuple[float, float, float]]:
    """The ``(primary, auxiliary, fusion)`` triples the reference tries, in its order, each once.

    The reference's loop variables are (dermoscopy, clinical, fusion) weights; renormalising them in place
    is what makes the path (see the module docstring).
    """
    values = fusionm4net_weight_list(search_num, schedule)
    path: dict[tuple[float, float, float], None] = {}
    for primary in values:
        for auxiliary in values:
            for fusion in values:
                total = primary + auxiliary + fusion
                if total > 1:
                    continue
                # As the reference: the loop variables themselves are renormalised.
                primary, auxiliary, fusion = primary / total, auxiliary / total, fusion / total  # noqa: PLW2901
                path.setdefault((primary, auxiliary, fusion), None)
    return list(path)


def _reference_avg_acc(
    logits: Mapping[str, Sequence[np.ndarray]],
    labels: np.ndarray,
    point: tuple[float, float, float],
    present: np.ndarray | None,
) -> float:
    """FusionM4Net's criterion for one triple: per view ``softmax(w_a·aux + w_p·primary + w_f·fusion)``,
    averaged over views, arg-max; task accuracies summed last task first (its order on Derm7pt), over tasks."""
    w_primary, w_auxiliary, w_fusion = point
    total = 0.0
    for i in reversed(range(labels.shape[1])):
        primary = logits["primary"][i]
        z = w_auxiliary * logits["auxiliary"][i] + w_primary * primary + w_fusion * logits["fusion"][i]
        if present is not None:  # no auxiliary image: the primary head alone
            z = np.where(present[None, :, None], z, primary)
        z = np.exp(z - z.max(axis=-1, keepdims=True))
        probabilities = (z / z.sum(axis=-1, keepdims=True)).mean(axis=0)
        total = total + float(np.mean(probabilities.argmax(axis=-1) == labels[:, i]))
    return total / labels.shape[1]


def _search_fusionm4net(
    logits: Mapping[str, Mapping[str, torch.Tensor]],
    labels: torch.Tensor,
    tasks: Sequence[TaskSpec],
    auxiliary_present: torch.Tensor | None,
    search_num: int,
    schedule: str,
) -> WeightSearchResult:
    as_views = {
        head: [np.asarray(_views(logits[head][t.name]), dtype=np.float64) for t in tasks] for head in HEADS
    }
    truth = labels.cpu().numpy()
    present = None if auxiliary_present is None else auxiliary_present.cpu().numpy().astype(bool)
    best_score, best_point, surface = 0.0, None, []
    for point in fusionm4net_candidates(search_num, schedule):
        value = _reference_avg_acc(as_views, truth, point, present)
        surface.append((point, value))
        if value > best_score:  # strictly better, from 0 up: the reference's rule
            best_score, best_point = value, point
    if best_point is None:
        raise UsageError("the fusionm4net weight search found no weights with any correct prediction")
    corners = dict(zip(HEADS, ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)), strict=True))
    head_scores = {h: _reference_avg_acc(as_views, truth, c, present) for h, c in corners.items()}
    weights = dict(zip(HEADS, best_point, strict=True))
    return WeightSearchResult(weights, best_score, head_scores, "avg_acc", tuple(surface), "logits")


def _views(tensor: torch.Tensor) -> np.ndarray:
    """``[V, N, C]`` (a ``[N, C]`` tensor is one view)."""
    array = tensor.detach().cpu().numpy()
    return array[None] if array.ndim == 2 else array


def search_head_weights(
    probabilities: Mapping[str, Mapping[str, torch.Tensor]],
    labels: torch.Tensor,
    tasks: Sequence[TaskSpec],
    *,
    auxiliary_present: torch.Tensor | None = None,
    step: float = 0.05,
    objective: str | None = None,
    combine: str = "probabilities",
    logits: Mapping[str, Mapping[str, torch.Tensor]] | None = None,
    method: str = "simplex",
    search_num: int = 20,
    schedule: str = "linear",
) -> WeightSearchResult:
    """The weights maximising ``objective`` (``"avg_auc"``, the default, or ``"avg_acc"``) of the mixed prediction.

    ``method="simplex"`` tries the simplex grid at ``step``. ``combine="probabilities"`` mixes the heads'
    (view-averaged) probabilities, Eq. 4; ``combine="logits"`` mixes as FusionM4Net's second stage
    (``second_stage_fusion_utils.py`` of Tang et al., 2022, which the AMMFM paper follows): each TTA
    view's logits ``[V, N, C]`` (``logits``) are summed with the weights, soft-maxed, then averaged over
    views. With ``objective="avg_acc"`` that is the reference's criterion: the mean accuracy of the tasks.

    ``method="fusionm4net"`` walks the reference's own candidates (``search_num``, ``schedule``
    ``"linear"`` or ``"cosine"``; see the module docstring) on ``logits`` as given (the reference's are
    raw) and picks what it picks; it always scores ``avg_acc`` of mixed logits and ignores ``step``.
    """
    if method not in METHODS:
        raise UsageError(f"method must be one of {list(METHODS)}, got {method!r}")
    if method == "fusionm4net":
        if objective not in (None, "avg_acc"):
            raise UsageError(
                f"method='fusionm4net' scores avg_acc, as the reference does; got objective {objective!r}"
            )
        if logits is None:
            raise UsageError("method='fusionm4net' mixes the heads' logits: pass logits=")
        missing = [h for h in HEADS if h not in logits]
        if missing:
            raise UsageError(f"the weight search needs all three heads' logits; missing {missing}")
        return _search_fusionm4net(logits, labels, tasks, auxiliary_present, search_num, schedule)
    objective = objective or "avg_auc"
    if combine not in HEAD_COMBINE_MODES:
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
    """The final probabilities: Eq. 4 of probabilities, or FusionM4Net's per-view mix of logits, averaged."""
    mixed = mix_heads(source, weights, auxiliary_present, combine=combine)
    return {t: p.mean(dim=0) for t, p in mixed.items()} if combine == "logits" else mixed
