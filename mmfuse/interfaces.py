"""The two extension points of mmfuse: multi-scale encoders and fusion blocks.

Both are plain ``nn.Module`` subclasses. Everything crossing these interfaces is NCHW, so a fusion
block never needs to know which backbone family produced its inputs.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import nn


class Encoder(nn.Module, ABC):
    """A multi-scale feature extractor split into stages.

    ``channels[i]`` and ``reductions[i]`` describe the NCHW output of stage ``i``. The model runs an
    encoder stage by stage (:meth:`forward_stage`) so that a fusion block can replace a stage's output
    before the next stage consumes it; :meth:`forward` runs all stages for users who only want features.
    """

    channels: list[int]
    reductions: list[int]

    @property
    def num_stages(self) -> int:
        return len(self.channels)

    @abstractmethod
    def forward_stage(self, index: int, x: torch.Tensor) -> torch.Tensor:
        """Run stage ``index`` on ``x`` (the image for stage 0, else the NCHW output of the previous stage)."""

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for index in range(self.num_stages):
            x = self.forward_stage(index, x)
            features.append(x)
        return features


class FusionBlock(nn.Module, ABC):
    """Lets two modalities interact at one scale.

    ``forward(primary, auxiliary)`` returns ``(primary', auxiliary')``: ``primary'`` has the primary's
    shape; ``auxiliary'`` has the auxiliary's. The auxiliary map may differ in channels and spatial
    size from the primary one: aligning it is the block's job.
    """

    def __init__(self, primary_channels: int, auxiliary_channels: int, **options) -> None:
        super().__init__()
        if options:
            raise TypeError(f"{type(self).__name__} got unknown options: {sorted(options)}")
        self.primary_channels = primary_channels
        self.auxiliary_channels = auxiliary_channels

    @abstractmethod
    def forward(
        self, primary: torch.Tensor, auxiliary: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]: ...
