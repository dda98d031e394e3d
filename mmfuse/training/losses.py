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

from mmfuse.tasks import TaskSpec

# Heads that need the auxiliary image, masked for samples that lack it.
AUXILIARY_HEADS = ("auxiliary", "fusion")


def multitask_loss(
    logits: Mapping[str, Mapping[str, torch.Tensor]],
    labels: torch.Tensor,
    tasks: Sequence[TaskSpec],
    auxiliary_present: torch.Tensor | None = None,
    head_present: Mapping[str, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Total loss and the per-head terms.

    ``logits[head][task]`` is ``[B, C_task]`` (the heads present in the model output); ``labels`` is
    ``[B, T]`` with class indices in task order; ``auxiliary_present`` is ``[B]`` bool (``None``: all).
    ``head_present[head]`` (``[B]`` bool, from ``FusionOutput.head_present``) masks rows a head could not
    see properly, e.g. a metadata-reading fusion head for cases without metadata.
    """
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
            losses = F.cross_entropy(per_task[task.name].float(), labels[:, column], reduction="none")
            if mask is not None:
                losses = losses * mask
            total = total + losses.sum() / batch
        per_head[head] = total
    return sum(per_head.values()), per_head
