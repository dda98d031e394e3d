"""Eq. 4: how the three heads' outputs become one prediction, as pure functions over tensors.

The paper's Eq. 4 is the weighted mean of the heads' softmax outputs; FusionM4Net's second stage, which
the paper follows, takes the softmax of the weighted mean of their logits instead (``head_combine``,
:data:`HEAD_COMBINE_MODES`). Both are one masked weighted mean, :func:`mix_heads`, which the model's
``predict``, the validation weight search and the evaluation report all call, so a prediction never
depends on which of them mixed it.

The state those calls read lives on the model and in its config.json (the head weights on the simplex,
the per-head, per-task temperatures of temperature scaling, the combine mode); the checks of that state and
its tensor form live here.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence

import torch

from mmfuse.errors import UsageError

# The three heads every model has, in Eq. 4 order (plain data: the model and the checks share it).
HEADS = ("primary", "auxiliary", "fusion")

# How Eq. 4's weights combine the heads: a weighted mean of their softmax outputs (the paper's Eq. 4), or
# the softmax of the weighted mean of their logits (FusionM4Net's second stage, which the paper follows).
HEAD_COMBINE_MODES = ("probabilities", "logits")

PerHead = Mapping[str, Mapping[str, torch.Tensor]]  # head -> task -> [..., batch, classes]
Temperatures = Mapping[str, Mapping[str, float]]  # head -> task -> T


def check_head_combine(mode: str) -> str:
    """``mode`` when it is one of :data:`HEAD_COMBINE_MODES`, else a :class:`UsageError`."""
    if mode not in HEAD_COMBINE_MODES:
        raise UsageError(f"head_combine must be one of {HEAD_COMBINE_MODES}, got {mode!r}")
    return mode


def check_head_weights(weights: Mapping[str, float] | Sequence[float]) -> list[float]:
    """Eq. 4's weights in :data:`HEADS` order; they must lie on the simplex (to 1e-6)."""
    if isinstance(weights, Mapping):
        missing = set(HEADS) - set(weights)
        if missing:
            raise UsageError(f"head weights miss {sorted(missing)}; expected keys {list(HEADS)}")
        weights = [weights[h] for h in HEADS]
    values = [float(w) for w in weights]
    if len(values) != len(HEADS) or any(w < 0 for w in values) or abs(math.fsum(values) - 1.0) > 1e-6:
        raise UsageError(f"head weights must be 3 non-negative numbers summing to 1, got {values}")
    return values


def head_weight_tensor(weights: Mapping[str, float]) -> torch.Tensor:
    """``[3]``: the weights in :data:`HEADS` order (the model's ``head_weights`` buffer)."""
    return torch.tensor([float(weights[h]) for h in HEADS])


def head_weights_from_tensor(values: torch.Tensor) -> dict[str, float]:
    """``{head: weight}`` of a :func:`head_weight_tensor` (the inverse)."""
    return {h: float(w) for h, w in zip(HEADS, values.tolist(), strict=True)}


def check_temperatures(
    temperatures: Temperatures | None, task_names: Collection[str]
) -> dict[str, dict[str, float]] | None:
    """A checked copy of ``{head: {task: T}}`` (each ``T`` a positive finite number), or ``None``."""
    if temperatures is None:
        return None
    checked: dict[str, dict[str, float]] = {}
    for head, per_task in temperatures.items():
        if head not in HEADS:
            raise UsageError(f"temperatures name unknown head {head!r}; heads are {list(HEADS)}")
        if not isinstance(per_task, Mapping):
            raise UsageError(f"temperatures[{head!r}] must map task names to numbers, got {per_task!r}")
        for task, value in per_task.items():
            if task not in task_names:
                raise UsageError(f"temperatures[{head!r}] names unknown task {task!r}")
            t = float(value)
            if not math.isfinite(t) or t <= 0:
                raise UsageError(f"temperature of {head}/{task} must be a positive number, got {value!r}")
            checked.setdefault(head, {})[task] = t
    return checked


def scale_logits(logits: PerHead, temperatures: Temperatures | None) -> dict[str, dict[str, torch.Tensor]]:
    """Every head's logits divided by its temperature for the task (1 where none is given)."""
    temperatures = temperatures or {}
    return {
        head: {task: z / temperatures.get(head, {}).get(task, 1.0) for task, z in per_task.items()}
        for head, per_task in logits.items()
    }


def head_probabilities(
    logits: PerHead, temperatures: Temperatures | None = None
) -> dict[str, dict[str, torch.Tensor]]:
    """Softmax over classes of every head's logits, divided first by its temperatures."""
    return {
        head: {task: z.softmax(dim=-1) for task, z in per_task.items()}
        for head, per_task in scale_logits(logits, temperatures).items()
    }


def mix_heads(
    source: PerHead,
    weights: Mapping[str, float],
    auxiliary_present: torch.Tensor | None = None,
    head_present: Mapping[str, torch.Tensor] | None = None,
    *,
    combine: str = "probabilities",
) -> dict[str, torch.Tensor]:
    """Eq. 4: ``{task: [..., batch, classes]}`` probabilities, the weighted mean of the heads in ``source``.

    ``source[head][task]`` is ``[..., batch, classes]``: probabilities (``combine="probabilities"``, the
    paper's Eq. 4) or logits (``combine="logits"``: the softmax of their weighted mean, FusionM4Net's way);
    a leading axis (TTA views) is mixed view by view. The weights are renormalised over the heads present in
    each row: ``head_present[head]`` (bool ``[batch]``) leaves a head out of some rows (e.g. a fusion head
    that needs metadata, for cases without it), and rows whose ``auxiliary_present`` is False take the
    primary head alone. Heads present with zero total weight (primary-only inference with
    ``w_primary = 0``) share equally.
    """
    check_head_combine(combine)
    heads = [h for h in HEADS if h in source]
    mixed = {}
    for task in source[heads[0]]:
        values = [_at_least_float32(source[h][task]) for h in heads]
        masks = [_row_mask(head_present, h, values[0]) for h in heads]
        value = _weighted_mean(values, [float(weights[h]) for h in heads], masks)
        if auxiliary_present is not None and "primary" in source:
            keep = auxiliary_present.to(value.device).bool().view(-1, 1)
            value = torch.where(keep, value, values[heads.index("primary")])
        mixed[task] = value.softmax(dim=-1) if combine == "logits" else value
    return mixed


def mix_logits(
    logits: PerHead,
    weights: Mapping[str, float],
    *,
    combine: str = "probabilities",
    temperatures: Temperatures | None = None,
    auxiliary_present: torch.Tensor | None = None,
    head_present: Mapping[str, torch.Tensor] | None = None,
) -> dict[str, torch.Tensor]:
    """The final probabilities of the heads' raw ``logits``: divided by ``temperatures``, then mixed."""
    if combine == "logits":
        source = scale_logits(logits, temperatures)
    else:
        source = head_probabilities(logits, temperatures)
    return mix_heads(source, weights, auxiliary_present, head_present, combine=combine)


def _at_least_float32(x: torch.Tensor) -> torch.Tensor:
    # Half-precision logits (autocast) are mixed in float32; float64 stays float64.
    return x.to(torch.promote_types(x.dtype, torch.float32))


def _row_mask(
    head_present: Mapping[str, torch.Tensor] | None, head: str, like: torch.Tensor
) -> torch.Tensor | float:
    """``[batch, 1]`` float: the rows where ``head`` answers; the plain number 1.0 when it answers in all."""
    if not head_present or head not in head_present:
        return 1.0
    return head_present[head].to(like.device).view(-1, 1).to(like.dtype)


def _weighted_mean(
    values: Sequence[torch.Tensor], weights: Sequence[float], masks: Sequence[torch.Tensor | float]
) -> torch.Tensor:
    """Per row: ``Σ w·m·x / Σ w·m`` over the heads; where ``Σ w·m`` is 0, the plain mean over ``m``."""
    numerator = sum(w * m * x for w, m, x in zip(weights, masks, values, strict=True))
    total = sum(w * m for w, m in zip(weights, masks, strict=True))
    count = sum(masks)
    equal = sum(m * x for m, x in zip(masks, values, strict=True))
    if not isinstance(total, torch.Tensor):  # the same heads in every row
        return numerator / total if total > 0 else equal / count
    # clamp_min: the branch torch.where drops must stay finite, or its gradient is NaN.
    return torch.where(total > 0, numerator / total.clamp_min(1e-12), equal / count.clamp_min(1))
