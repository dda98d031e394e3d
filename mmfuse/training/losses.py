"""Eq. 2–3 of the paper: L = L_primary + L_auxiliary + L_fusion, each a sum over tasks of cross-entropy.

Cross-entropy is averaged over the batch (the paper's Eq. 3 sums; the mean only rescales the learning
rate and keeps it independent of the batch size). Samples without an auxiliary image contribute zero to
the auxiliary and fusion terms but still count in the batch size, so masking never changes the weight of
the samples that remain.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F

from mmfuse.tasks import TaskMismatchError, TaskSpec

# Heads that need the auxiliary image, masked for samples that lack it.
AUXILIARY_HEADS = ("auxiliary", "fusion")


def multitask_loss(
    logits: Mapping[str, Mapping[str, torch.Tensor]],
    labels: torch.Tensor,
    tasks: Sequence[TaskSpec],
    auxiliary_present: torch.Tensor | None = None,
    head_present: Mapping[str, torch.Tensor] | None = None,
    class_weights: Mapping[str, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Total loss and the per-head terms.

    ``logits[head][task]`` is ``[B, C_task]`` (the heads present in the model output); ``labels`` is
    ``[B, T]`` with class indices in task order; ``auxiliary_present`` is ``[B]`` bool (``None``: all).
    ``head_present[head]`` (``[B]`` bool, from ``FusionOutput.head_present``) masks rows a head could not
    see properly, e.g. a metadata-reading fusion head for cases without metadata. ``class_weights[task]``
    (``[C]``) weighs each sample's cross-entropy by its class (``train.class_weights``).
    """
    check_task_shapes(logits, labels, tasks)
    batch = labels.shape[0]
    per_head = {}
    for head, per_task in logits.items():
        mask = None
        if head in AUXILIARY_HEADS and auxiliary_present is not None:
            mask = auxiliary_present.to(device=labels.device, dtype=torch.float32)
        if head_present and head in head_present:
            rows = head_present[head].to(device=labels.device, dtype=torch.float32)
            mask = rows if mask is None else mask * rows
        total = labels.new_zeros((), dtype=torch.float32)
        for column, task in enumerate(tasks):
            target = labels[:, column]
            if target.device.type == "cpu" and bool(((target < 0) | (target >= task.num_classes)).any()):
                raise TaskMismatchError(
                    f"labels of task {task.name!r} must be class indices in [0, {task.num_classes}), got "
                    f"{sorted(set(target.tolist()))}: the data's classes differ from the model's {list(task.classes)}"
                )
            weight = None if class_weights is None else class_weights[task.name].to(labels.device)
            losses = F.cross_entropy(per_task[task.name].float(), target, weight=weight, reduction="none")
            if mask is not None:
                losses = losses * mask
            total = total + losses.sum() / batch
        per_head[head] = total
    return sum(per_head.values()), per_head


def check_task_shapes(
    logits: Mapping[str, Mapping[str, torch.Tensor]], labels: torch.Tensor, tasks: Sequence[TaskSpec]
) -> None:
    """Raise :class:`TaskMismatchError` unless labels and every head's logits fit ``tasks``.

    Labels from a dataset with other tasks than the model's would otherwise index the wrong column
    (a silently wrong loss) or fail deep inside ``cross_entropy`` with a bare IndexError.
    """
    names = [t.name for t in tasks]
    if labels.dim() != 2 or labels.shape[1] != len(tasks):
        raise TaskMismatchError(
            f"labels have shape {tuple(labels.shape)} but the model has {len(tasks)} tasks {names}: "
            "the data's tasks differ from the model's"
        )
    for head, per_task in logits.items():
        missing = [n for n in names if n not in per_task]
        if missing:
            raise TaskMismatchError(
                f"head {head!r} has no logits for task(s) {missing}; its tasks: {list(per_task)}"
            )
        for task in tasks:
            width = per_task[task.name].shape[-1]
            if width != task.num_classes:
                raise TaskMismatchError(
                    f"head {head!r} gives {width} logits for task {task.name!r}, which has "
                    f"{task.num_classes} classes {list(task.classes)}"
                )
