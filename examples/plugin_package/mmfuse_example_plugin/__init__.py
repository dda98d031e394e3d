"""An example mmfuse plugin, shipped as its own package.

It implements the same hooks as mmfuse's built-in plugins: ``register_fusions`` adds a ``gated``
fusion block and ``register_encoders`` adds ``tiny_cnn``, a small CNN encoder needing no timm.
Install it (``pip install -e examples/plugin_package``) and ``build_model(fusion="gated")`` works.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

import mmfuse


class GatedFusion(mmfuse.FusionBlock):
    """``primary' = primary * (1 + tanh(g) * sigmoid(conv1x1(aux)))``: the auxiliary map gates the primary one.

    ``g`` starts at zero, so the block is the identity at initialisation.
    """

    def __init__(self, primary_channels: int, auxiliary_channels: int) -> None:
        super().__init__(primary_channels, auxiliary_channels)
        self.gate = nn.Conv2d(auxiliary_channels, primary_channels, 1)
        self.strength = nn.Parameter(torch.zeros(()))

    def forward(self, primary: torch.Tensor, auxiliary: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        aligned = F.interpolate(auxiliary, size=primary.shape[-2:], mode="bilinear", align_corners=False)
        return primary * (1 + torch.tanh(self.strength) * torch.sigmoid(self.gate(aligned))), auxiliary


class TinyCNN(mmfuse.Encoder):
    """Four stride-2 conv stages (reductions 2, 4, 8, 16): a stand-in backbone for quick experiments."""

    def __init__(self, width: int = 8, img_size: int | None = None, pretrained: bool = False) -> None:
        super().__init__()
        if pretrained:
            raise ValueError("tiny_cnn has no pretrained weights")
        self.channels = [width, width * 2, width * 4, width * 8]
        self.reductions = [2, 4, 8, 16]
        in_channels = [3, *self.channels[:-1]]
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Conv2d(i, o, 3, stride=2, padding=1), nn.BatchNorm2d(o), nn.ReLU())
            for i, o in zip(in_channels, self.channels, strict=True)
        )

    def forward_stage(self, index: int, x: torch.Tensor) -> torch.Tensor:
        return self.blocks[index](x)


@mmfuse.hookimpl
def register_fusions(register) -> None:
    register("gated", GatedFusion)


@mmfuse.hookimpl
def register_encoders(register) -> None:
    register("tiny_cnn", TinyCNN)
