"""Built-in multi-task heads: ``linear`` (the paper's) and ``mlp`` (FusionM4Net's branch heads)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

import mmfuse
from mmfuse import TaskSpec
from mmfuse.errors import UsageError


class LinearHead(mmfuse.Head):
    """One linear classifier per task on the pooled vector (after optional dropout)."""

    def __init__(self, in_features: int, tasks: Sequence[TaskSpec], dropout: float = 0.0) -> None:
        super().__init__(in_features, tasks)
        self.dropout = nn.Dropout(dropout)
        self.classifiers = nn.ModuleDict({t.name: nn.Linear(in_features, t.num_classes) for t in tasks})

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.dropout(x)
        return {name: classifier(x) for name, classifier in self.classifiers.items()}


class Swish(nn.Module):
    """``x * sigmoid(x)``; FusionM4Net's activation (``nn.SiLU`` computes the same function)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.silu(x)


ACTIVATIONS = {"swish": Swish, "relu": nn.ReLU, "gelu": nn.GELU}


class MLPHead(mmfuse.Head):
    """A shared MLP (``Linear → BatchNorm → activation``, dropout between layers), then one linear
    classifier per task: FusionM4Net's 2048 → 512 → 128 branch heads with Swish and dropout 0.3.
    """

    def __init__(
        self,
        in_features: int,
        tasks: Sequence[TaskSpec],
        hidden: Sequence[int] = (512, 128),
        dropout: float = 0.3,
        activation: str = "swish",
    ) -> None:
        super().__init__(in_features, tasks)
        if activation not in ACTIVATIONS:
            raise UsageError(f"unknown head activation {activation!r}; choose from {sorted(ACTIVATIONS)}")
        if not hidden:
            raise UsageError("an mlp head needs at least one hidden width; use the 'linear' head instead")
        layers: list[nn.Module] = []
        width = in_features
        for i, out in enumerate(hidden):
            if i:
                layers.append(nn.Dropout(dropout))
            layers += [nn.Linear(width, int(out)), nn.BatchNorm1d(int(out)), ACTIVATIONS[activation]()]
            width = int(out)
        self.mlp = nn.Sequential(*layers)
        self.dropout = nn.Dropout(dropout)
        self.classifiers = nn.ModuleDict({t.name: nn.Linear(width, t.num_classes) for t in tasks})

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.dropout(self.mlp(x))
        return {name: classifier(x) for name, classifier in self.classifiers.items()}


@mmfuse.hookimpl
def register_heads(register) -> None:
    register("linear", LinearHead)
    register("mlp", MLPHead)
