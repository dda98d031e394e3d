"""An example mmfuse plugin, shipped as its own package.

It implements the same hooks as mmfuse's built-in plugins, one small example per contract:

- ``register_fusions``: ``gated`` (a plain :class:`mmfuse.FusionBlock`) and ``pooled_stream`` (a
  :class:`mmfuse.StreamFusionBlock` carrying a fusion stream from stage to stage);
- ``register_encoders``: ``tiny_cnn``, a small CNN encoder needing no timm;
- ``register_metadata_encoders``: ``linear_tanh``; ``register_combiners``: ``metadata_gate``;
  ``register_heads``: ``cosine``; ``register_presets``: ``example-stream``, which uses them all.

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


class PooledStream(mmfuse.StreamFusionBlock):
    """Keeps a fusion stream: each stage adds its 1×1-projected maps to the previous stream, resized.

    The encoders' maps pass through unchanged; the model's fusion head reads the final stream.
    """

    def __init__(self, primary_channels: int, auxiliary_channels: int, *, stream_channels=None) -> None:
        super().__init__(primary_channels, auxiliary_channels, stream_channels=stream_channels)
        self.primary_in = nn.Conv2d(primary_channels, primary_channels, 1)
        self.auxiliary_in = nn.Conv2d(auxiliary_channels, primary_channels, 1)
        self.carry = nn.ModuleList()
        if stream_channels is not None:
            self.carry = nn.ModuleList(nn.Conv2d(c, primary_channels, 1) for c in stream_channels)
        self.out_stream_channels = (primary_channels, primary_channels)

    def forward(self, primary, auxiliary, stream):
        size = primary.shape[-2:]
        aligned = F.interpolate(auxiliary, size=size, mode="bilinear", align_corners=False)
        new = [self.primary_in(primary), self.auxiliary_in(aligned)]
        if stream is not None:
            for i, previous in enumerate(stream):
                new[i] = new[i] + self.carry[i](F.adaptive_avg_pool2d(previous, size))
        return primary, auxiliary, (new[0], new[1])


class LinearTanhMetadata(mmfuse.MetadataEncoder):
    """``tanh(Linear(metadata))``: the smallest useful metadata encoder."""

    def __init__(self, in_features: int, out_features: int = 8) -> None:
        super().__init__(in_features)
        self.out_features = out_features
        self.linear = nn.Linear(in_features, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.linear(x))


class MetadataGate(mmfuse.Combiner):
    """The metadata decides, per feature, how much of each modality the fusion head sees."""

    uses_metadata = True

    def __init__(self, primary_features: int, auxiliary_features: int, metadata_features: int = 0) -> None:
        super().__init__(primary_features, auxiliary_features, metadata_features)
        if metadata_features < 1:
            raise ValueError("metadata_gate needs a model with metadata")
        self.align = nn.Linear(auxiliary_features, primary_features)
        self.gate = nn.Linear(metadata_features, primary_features)
        self.out_features = primary_features

    def forward(self, primary, auxiliary, metadata=None):
        g = torch.sigmoid(self.gate(metadata))
        return g * primary + (1 - g) * self.align(auxiliary)


class CosineHead(mmfuse.Head):
    """Per task, scaled cosine similarity between the vector and learned class prototypes."""

    def __init__(self, in_features: int, tasks, scale: float = 10.0) -> None:
        super().__init__(in_features, tasks)
        self.scale = scale
        self.prototypes = nn.ParameterDict(
            {t.name: nn.Parameter(torch.randn(t.num_classes, in_features) * 0.01) for t in tasks}
        )

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x = F.normalize(x, dim=1)
        return {name: self.scale * x @ F.normalize(w, dim=1).T for name, w in self.prototypes.items()}


@mmfuse.hookimpl
def register_fusions(register) -> None:
    register("gated", GatedFusion)
    register("pooled_stream", PooledStream)


@mmfuse.hookimpl
def register_metadata_encoders(register) -> None:
    register("linear_tanh", LinearTanhMetadata)


@mmfuse.hookimpl
def register_combiners(register) -> None:
    register("metadata_gate", MetadataGate)


@mmfuse.hookimpl
def register_heads(register) -> None:
    register("cosine", CosineHead)


@mmfuse.hookimpl
def register_presets(register) -> None:
    # Needs a metadata encoding at build time: build_model("example-stream", metadata=encoding).
    register(
        "example-stream",
        {
            "primary": "tiny_cnn",
            "auxiliary": "tiny_cnn",
            "share_encoder": True,
            "fusion": "pooled_stream",
            "fusion_stages": "all",
            "metadata_encoder": "linear_tanh",
            "combiner": "metadata_gate",
            "head": "cosine",
        },
    )


@mmfuse.hookimpl
def register_encoders(register) -> None:
    register("tiny_cnn", TinyCNN)
