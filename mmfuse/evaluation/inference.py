"""Per-head probabilities over a dataset, with test-time augmentation.

Each TTA view (flips and 90° rotations from :mod:`mmfuse.data.augment`) is applied to both images of a
pair; the heads' softmax outputs (of the logits divided by the model's temperatures, when it has them)
are averaged over the views. Cases without an auxiliary image are
answered by the primary head: their auxiliary and fusion rows are replaced by the primary head's
probabilities, so every head's figures cover every case and Eq. 4 gives the primary answer there too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

import torch
from tqdm.auto import tqdm

from mmfuse.data.augment import TTA_VIEWS, apply_tta_view
from mmfuse.errors import NonFiniteOutputError, UsageError
from mmfuse.head_mixing import head_probabilities, scale_logits
from mmfuse.runtime.data import metadata_inputs
from mmfuse.runtime.device import autocast_context

__all__ = [
    "Predictions",
    "autocast_context",
    "check_finite_logits",
    "collect_predictions",
    "metadata_inputs",
    "probabilities_from_logits",
    "resolve_views",
    "scaled_logits",
    "with_temperatures",
]


@dataclass
class Predictions:
    """Everything the metrics and the report writers need about one split."""

    case_ids: list[str]
    labels: torch.Tensor  # [N, T] class indices in task order
    auxiliary_present: torch.Tensor  # [N] bool
    probabilities: dict[str, dict[str, torch.Tensor]]  # head -> task -> [N, C]
    # head -> task -> [views, N, C]: the raw logits of every TTA view, for fitting and applying temperatures
    logits: dict[str, dict[str, torch.Tensor]] | None = None
    # head -> [N] bool: rows where a head that needs an extra input (metadata) could answer
    head_present: dict[str, torch.Tensor] | None = None
    # How the final prediction mixes the heads ("probabilities": Eq. 4; "logits": FusionM4Net's), and
    # the temperatures the probabilities were computed with (the logits mix divides by them too).
    combine: str = "probabilities"
    temperatures: dict[str, dict[str, float]] | None = None


def probabilities_from_logits(
    logits: Mapping[str, Mapping[str, torch.Tensor]],
    auxiliary_present: torch.Tensor,
    temperatures: Mapping[str, Mapping[str, float]] | None = None,
    head_present: Mapping[str, torch.Tensor] | None = None,
) -> dict[str, dict[str, torch.Tensor]]:
    """Per-head probabilities from per-view logits ``[V, N, C]``: softmax of ``z / T``, averaged over views.

    Rows where a head lacked an input it needs (``head_present`` False, e.g. metadata) take the mean of the
    heads that need no such input; rows without an auxiliary image then take the primary head's
    probabilities in every other head.
    """
    probabilities = {
        head: {task: p.mean(dim=0) for task, p in per_task.items()}
        for head, per_task in head_probabilities(_as_float(logits), temperatures).items()
    }
    for head, rows in (head_present or {}).items():
        others = [h for h in probabilities if h not in (head_present or {})]
        for task in probabilities[head]:
            substitute = sum(probabilities[h][task] for h in others) / len(others)
            probabilities[head][task] = torch.where(
                rows.bool().view(-1, 1), probabilities[head][task], substitute
            )
    if "primary" in probabilities:
        keep = auxiliary_present.bool().view(-1, 1)
        for head, per_task in probabilities.items():
            if head != "primary":
                for task in per_task:
                    per_task[task] = torch.where(keep, per_task[task], probabilities["primary"][task])
    return probabilities


def with_temperatures(
    predictions: Predictions, temperatures: Mapping[str, Mapping[str, float]] | None
) -> Predictions:
    """The same cases with every head's probabilities recomputed under ``temperatures`` (``None``: raw)."""
    if predictions.logits is None:
        raise UsageError("these predictions kept no logits; collect them again to change temperatures")
    probabilities = probabilities_from_logits(
        predictions.logits, predictions.auxiliary_present, temperatures, predictions.head_present
    )
    return replace(predictions, probabilities=probabilities, temperatures=temperatures)


def resolve_views(tta: bool | Sequence[str]) -> tuple[str, ...]:
    if tta is True:
        return TTA_VIEWS
    if not tta:
        return ("identity",)
    unknown = [v for v in tta if v not in TTA_VIEWS]
    if unknown:
        raise UsageError(f"unknown TTA views {unknown}; available: {list(TTA_VIEWS)}")
    return tuple(tta)


@torch.no_grad()
def collect_predictions(
    model: torch.nn.Module,
    batches: Iterable[dict],
    *,
    device: torch.device | str = "cpu",
    tta: bool | Sequence[str] = False,
    primary_only: bool = False,
    auxiliary_only: bool = False,
    calibrated: bool = True,
    amp: str = "none",
    channels_last: bool = False,
    progress: bool | None = None,
) -> Predictions:
    """Run ``model`` over ``batches`` (dataset batches: images, labels, case ids) in eval mode.

    ``primary_only`` answers from the primary branch alone (fusion blocks skipped), as the model does
    when no auxiliary image exists at all: the report then shows what the missing image costs;
    ``auxiliary_only`` answers from the auxiliary branch alone (no primary image). Probabilities use the
    model's temperatures unless ``calibrated`` is False; the raw per-view logits are kept either way.
    """
    device = torch.device(device)
    views = resolve_views(tta)
    temperatures = getattr(model, "temperatures", None) if calibrated else None
    was_training = model.training
    model.eval()
    case_ids: list[str] = []
    labels, present = [], []
    chunks: dict[str, dict[str, list[torch.Tensor]]] = {}
    present_chunks: dict[str, list[torch.Tensor]] = {}
    memory = torch.channels_last if channels_last else torch.contiguous_format
    try:
        for batch in tqdm(batches, desc="evaluate", leave=False, disable=_quiet(progress)):
            primary = batch["primary"].to(device).contiguous(memory_format=memory)
            auxiliary = batch["auxiliary"].to(device).contiguous(memory_format=memory)
            aux_present = batch["auxiliary_present"].to(device).bool()
            extra = metadata_inputs(model, batch, device)
            head_present: dict[str, torch.Tensor] = {}
            per_view: dict[str, dict[str, list[torch.Tensor]]] = {}
            for view in views:
                with autocast_context(device, amp):
                    output = model(
                        primary=None if auxiliary_only else apply_tta_view(view, primary),
                        auxiliary=None if primary_only else apply_tta_view(view, auxiliary),
                        auxiliary_present=None if primary_only or auxiliary_only else aux_present,
                        **extra,
                    )
                head_present = output.head_present
                for head, per_task in output.logits.items():
                    for task, logits in per_task.items():
                        per_view.setdefault(head, {}).setdefault(task, []).append(logits.float().cpu())
            for head, per_task in per_view.items():
                for task, stack in per_task.items():
                    chunks.setdefault(head, {}).setdefault(task, []).append(torch.stack(stack))
            for head, rows in head_present.items():
                present_chunks.setdefault(head, []).append(rows.detach().bool().cpu())
            labels.append(batch["labels"].cpu())
            present.append(batch["auxiliary_present"].cpu().bool())
            case_ids += [str(c) for c in batch["case_id"]]
    finally:
        model.train(was_training)
    if not case_ids:
        raise UsageError("no cases to evaluate: the split is empty")
    logits = {h: {t: torch.cat(v, dim=1) for t, v in per_task.items()} for h, per_task in chunks.items()}
    check_finite_logits(logits, case_ids)
    auxiliary_present = torch.cat(present)
    head_rows = {h: torch.cat(v) for h, v in present_chunks.items()} or None
    probabilities = probabilities_from_logits(logits, auxiliary_present, temperatures, head_rows)
    return Predictions(
        case_ids,
        torch.cat(labels),
        auxiliary_present,
        probabilities,
        logits,
        head_rows,
        combine=getattr(model, "head_combine", "probabilities"),
        temperatures=temperatures,
    )


def check_finite_logits(logits: Mapping[str, Mapping[str, torch.Tensor]], case_ids: Sequence[str]) -> None:
    """Raise :class:`NonFiniteOutputError` naming the cases and heads whose logits ``[V, N, C]`` hold NaN or inf.

    NaN logits turn into NaN probabilities that metrics, argmax and the seven-point score would
    silently report as results; a model that produces them (diverged weights, a broken input) must stop here.
    """
    bad_rows = torch.zeros(len(case_ids), dtype=torch.bool)
    where = []
    for head, per_task in logits.items():
        for task, z in per_task.items():
            rows = ~torch.isfinite(z).all(dim=-1).all(dim=0)
            if rows.any():
                where.append(f"{head}/{task}")
                bad_rows |= rows
    if where:
        ids = [case_ids[i] for i in bad_rows.nonzero().flatten().tolist()]
        shown = ", ".join(ids[:10]) + (f" and {len(ids) - 10} more" if len(ids) > 10 else "")
        raise NonFiniteOutputError(
            f"the model produced NaN or infinite logits for {len(ids)} case(s) ({shown}) in {', '.join(where)}; "
            "its weights or inputs are broken (a diverged training run, a damaged checkpoint or image)"
        )


def _quiet(progress: bool | None) -> bool | None:
    # tqdm's disable=None already hides bars when stderr is not a terminal.
    return None if progress is None else not progress


def scaled_logits(predictions: Predictions) -> dict[str, dict[str, torch.Tensor]]:
    """Every head's per-view logits ``[V, N, C]`` divided by the predictions' temperatures."""
    if predictions.logits is None:
        raise UsageError("these predictions kept no logits; collect them again to mix logits")
    return scale_logits(_as_float(predictions.logits), predictions.temperatures)


def _as_float(logits: Mapping[str, Mapping[str, torch.Tensor]]) -> dict[str, dict[str, torch.Tensor]]:
    return {head: {task: z.float() for task, z in per_task.items()} for head, per_task in logits.items()}
