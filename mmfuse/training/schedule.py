"""A run's learning rate and weight averaging: warm-up, cosine (or constant) decay, then SWA.

The base schedule sets ``train.lr`` times :func:`lr_factor` for each epoch before ``swa_start``; from
there SWALR anneals to the SWA learning rate and the weights are averaged. After the last epoch the
average gets fresh batch-norm statistics (:func:`swap_in_average`) and becomes the model.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import nn
from torch.optim.swa_utils import SWALR, AveragedModel, update_bn

from mmfuse.runtime.data import metadata_inputs
from mmfuse.runtime.device import autocast_context
from mmfuse.training.batches import BatchSource


def lr_factor(epoch: int, train: Mapping) -> float:
    """The base schedule's multiplier of ``train.lr`` for ``epoch`` (SWA epochs follow SWALR instead)."""
    warmup = int(train["warmup_epochs"])
    if epoch < warmup:
        return (epoch + 1) / (warmup + 1)
    if train["schedule"] == "constant":
        return 1.0
    span = max(1, train["epochs"] - train["swa"]["epochs"] - warmup)
    progress = min(1.0, (epoch - warmup) / span)
    low = float(train["min_lr_ratio"])
    return low + (1 - low) * 0.5 * (1 + math.cos(math.pi * progress))


def swa_lr(train: Mapping, swa_start: int) -> float:
    """``train.swa.lr``, or (null) the base schedule's rate where averaging starts."""
    value = train["swa"]["lr"]
    return float(value) if value is not None else float(train["lr"]) * lr_factor(swa_start, train)


def schedulers(
    optimizer: torch.optim.Optimizer, train: Mapping, swa_start: int
) -> tuple[torch.optim.lr_scheduler.LambdaLR, SWALR]:
    """The base schedule and SWA's, both stepping ``optimizer`` once per epoch."""
    base = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda e: lr_factor(e, train))
    swa = SWALR(
        optimizer,
        swa_lr=swa_lr(train, swa_start),
        anneal_epochs=max(1, int(train["swa"]["anneal_epochs"])),
        anneal_strategy="cos",
    )
    return base, swa


def rebase_lr(
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LambdaLR,
    train: Mapping,
    *,
    start_epoch: int,
    swa_start: int,
) -> None:
    """A resumed checkpoint's optimizer and schedules carry the old learning rate: rebase them on ``train.lr``."""
    lr = float(train["lr"])
    averaged_lr = swa_lr(train, swa_start)
    scheduler.base_lrs = [lr for _ in optimizer.param_groups]
    for group in optimizer.param_groups:
        group["initial_lr"] = lr
        if "swa_lr" in group:
            group["swa_lr"] = averaged_lr
        if start_epoch < swa_start:
            group["lr"] = lr * lr_factor(start_epoch, train)


class _PairInput(nn.Module):
    """Lets :func:`torch.optim.swa_utils.update_bn` feed our dict batches to a two-input model."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: Mapping[str, torch.Tensor]):
        return self.model(
            primary=batch["primary"],
            auxiliary=batch["auxiliary"],
            auxiliary_present=batch["auxiliary_present"],
            **metadata_inputs(self.model, dict(batch), batch["primary"].device),
        )


def swap_in_average(
    model: nn.Module,
    average: AveragedModel,
    batches: BatchSource,
    *,
    epoch: int,
    device: torch.device,
    amp: str,
) -> None:
    """Load ``average``'s weights into ``model``, with batch-norm statistics recomputed on ``batches``
    (their epoch ``epoch``, so the pass is the same in a resumed run)."""
    averaged = average.module
    with torch.no_grad(), autocast_context(device, amp):
        update_bn(batches.epoch(epoch), _PairInput(averaged))
    model.load_state_dict(averaged.state_dict())
