"""Built-in metadata encoders: ``mlp`` (TFormer's metadata subnet) and ``identity``."""

from __future__ import annotations

import torch
from torch import nn

import mmfuse
from mmfuse.errors import UsageError


class MLPMetadataEncoder(mmfuse.MetadataEncoder):
    """Two ``Linear → BatchNorm → ReLU`` layers and dropout: the metadata subnet of TFormer
    (20 → 128 → 128, dropout 0.3) and, with other widths, of most image+metadata models.
    """

    def __init__(
        self, in_features: int, hidden: int = 128, out_features: int = 128, dropout: float = 0.3
    ) -> None:
        super().__init__(in_features)
        if in_features < 1:
            raise UsageError("the mlp metadata encoder needs at least one metadata value")
        self.out_features = int(out_features)
        self.net = nn.Sequential(
            nn.Linear(in_features, hidden),
            nn.BatchNorm1d(hidden),
            nn.ReLU(),
            nn.Linear(hidden, out_features),
            nn.BatchNorm1d(out_features),
            nn.ReLU(),
            nn.Dropout(dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class IdentityMetadataEncoder(mmfuse.MetadataEncoder):
    """The encoded vector itself (one-hot and standardised values), for late-fusion baselines."""

    def __init__(self, in_features: int) -> None:
        super().__init__(in_features)
        self.out_features = self.in_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


@mmfuse.hookimpl
def register_metadata_encoders(register) -> None:
    register("mlp", MLPMetadataEncoder)
    register("identity", IdentityMetadataEncoder)
