"""Per-head probabilities over a dataset, with test-time augmentation.

Each TTA view (flips and 90° rotations from :mod:`mmfuse.data.augment`) is applied to both images of a
pair; the heads' softmax outputs are averaged over the views. Cases without an auxiliary image are
answered by the primary head: their auxiliary and fusion rows are replaced by the primary head's
probabilities, so every head's figures cover every case and Eq. 4 gives the primary answer there too.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from mmfuse.data.augment import TTA_VIEWS, apply_tta_view


@dataclass
class Predictions:
    """Everything the metrics and the report writers need about one split."""

    case_ids: list[str]
    labels: torch.Tensor  # [N, T] class indices in task order
    auxiliary_present: torch.Tensor  # [N] bool
    probabilities: dict[str, dict[str, torch.Tensor]]  # head -> task -> [N, C]


def autocast_context(device: torch.device, amp: str = "none"):
    """bf16 or fp16 autocast on CUDA; nothing elsewhere (CPU runs stay in float32, bit-reproducible)."""
    if device.type != "cuda" or amp == "none":
        return contextlib.nullcontext()
    return torch.autocast("cuda", dtype=torch.bfloat16 if amp == "bf16" else torch.float16)


def resolve_views(tta: bool | Sequence[str]) -> tuple[str, ...]:
    if tta is True:
        return TTA_VIEWS
    if not tta:
        return ("identity",)
    unknown = [v for v in tta if v not in TTA_VIEWS]
    if unknown:
        raise ValueError(f"unknown TTA views {unknown}; available: {list(TTA_VIEWS)}")
    return tuple(tta)


@torch.no_grad()
def collect_predictions(
    model: torch.nn.Module,
    batches: Iterable[dict],
    *,
    device: torch.device | str = "cpu",
    tta: bool | Sequence[str] = False,
    primary_only: bool = False,
    amp: str = "none",
    channels_last: bool = False,
    progress: bool | None = None,
) -> Predictions:
    """Run ``model`` over ``batches`` (dataset batches: images, labels, case ids) in eval mode.

    ``primary_only`` answers from the primary branch alone (fusion blocks skipped), as the model does
    when no auxiliary image exists at all: the report then shows what the missing image costs.
    """
    device = torch.device(device)
    views = resolve_views(tta)
    was_training = model.training
    model.eval()
    case_ids: list[str] = []
    labels, present = [], []
    sums: dict[str, dict[str, list[torch.Tensor]]] = {}
    memory = torch.channels_last if channels_last else torch.contiguous_format
    try:
        for batch in tqdm(batches, desc="evaluate", leave=False, disable=_quiet(progress)):
            primary = batch["primary"].to(device).contiguous(memory_format=memory)
            auxiliary = batch["auxiliary"].to(device).contiguous(memory_format=memory)
            aux_present = batch["auxiliary_present"].to(device).bool()
            extra = metadata_inputs(model, batch, device)
            head_present: dict[str, torch.Tensor] = {}
            accumulated: dict[str, dict[str, torch.Tensor]] = {}
            for view in views:
                with autocast_context(device, amp):
                    output = model(
                        primary=apply_tta_view(view, primary),
                        auxiliary=None if primary_only else apply_tta_view(view, auxiliary),
                        auxiliary_present=None if primary_only else aux_present,
                        **extra,
                    )
                head_present = output.head_present
                for head, per_task in output.logits.items():
                    for task, logits in per_task.items():
                        p = logits.float().softmax(dim=-1)
                        slot = accumulated.setdefault(head, {})
                        slot[task] = slot[task] + p if task in slot else p
            for head, per_task in accumulated.items():
                for task, total in per_task.items():
                    mean = total / len(views)
                    if head in head_present:
                        # Rows lacking an input this head needs (metadata) take the other heads' mean.
                        others = [
                            accumulated[h][task] / len(views) for h in accumulated if h not in head_present
                        ]
                        substitute = sum(others) / len(others)
                        mean = torch.where(head_present[head].view(-1, 1), mean, substitute)
                    if head != "primary" and "primary" in accumulated:
                        primary_mean = accumulated["primary"][task] / len(views)
                        mean = torch.where(aux_present.view(-1, 1), mean, primary_mean)
                    sums.setdefault(head, {}).setdefault(task, []).append(mean.cpu())
            labels.append(batch["labels"].cpu())
            present.append(batch["auxiliary_present"].cpu().bool())
            case_ids += [str(c) for c in batch["case_id"]]
    finally:
        model.train(was_training)
    if not case_ids:
        raise ValueError("no cases to evaluate: the split is empty")
    probabilities = {h: {t: torch.cat(v) for t, v in per_task.items()} for h, per_task in sums.items()}
    return Predictions(case_ids, torch.cat(labels), torch.cat(present), probabilities)


def metadata_inputs(model: torch.nn.Module, batch: dict, device: torch.device | str) -> dict:
    """The ``metadata`` / ``metadata_present`` keyword inputs of ``batch`` for a model that takes them."""
    if not getattr(model, "uses_metadata", False):
        return {}
    if "metadata" not in batch:
        raise ValueError(
            "this model takes patient metadata but the batches carry none: build the dataset with "
            "the model's metadata_encoding (data.metadata in a run config)"
        )
    return {
        "metadata": batch["metadata"].to(device),
        "metadata_present": batch["metadata_present"].to(device).bool(),
    }


def _quiet(progress: bool | None) -> bool | None:
    # tqdm's disable=None already hides bars when stderr is not a terminal.
    return None if progress is None else not progress
