"""The extension points of mmfuse: encoders, fusion blocks, metadata encoders, combiners and heads.

All are plain ``nn.Module`` subclasses. Image features crossing these interfaces are NCHW, so a fusion
block never needs to know which backbone family produced its inputs; vectors are ``[batch, features]``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import torch
from torch import nn

from mmfuse.errors import UnknownOptionError
from mmfuse.tasks import TaskSpec

Stream = tuple[torch.Tensor, torch.Tensor]


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
            raise UnknownOptionError(f"{type(self).__name__} got unknown options: {sorted(options)}")
        self.primary_channels = primary_channels
        self.auxiliary_channels = auxiliary_channels

    @abstractmethod
    def forward(
        self, primary: torch.Tensor, auxiliary: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]: ...


class StreamFusionBlock(FusionBlock):
    """A fusion block that also carries a *fusion stream* from one fused stage to the next (TFormer).

    The stream is a pair of NCHW maps ``(primary_stream, auxiliary_stream)`` kept apart from the
    encoders: ``forward(primary, auxiliary, stream)`` receives the previous block's stream (``None`` at
    the first block) and returns ``(primary', auxiliary', stream')``. The constructor receives
    ``stream_channels``, the previous block's :attr:`out_stream_channels` (``None`` for the first
    block), and must set :attr:`out_stream_channels`. When the model ends with a stream, the fusion
    head's combiner reads the pooled stream instead of the encoders' final maps; the primary and
    auxiliary heads still read the encoders.
    """

    out_stream_channels: tuple[int, int]

    def __init__(
        self,
        primary_channels: int,
        auxiliary_channels: int,
        *,
        stream_channels: tuple[int, int] | None = None,
        **options,
    ) -> None:
        super().__init__(primary_channels, auxiliary_channels, **options)
        self.stream_channels = None if stream_channels is None else tuple(stream_channels)

    @abstractmethod
    def forward(  # type: ignore[override]
        self, primary: torch.Tensor, auxiliary: torch.Tensor, stream: Stream | None
    ) -> tuple[torch.Tensor, torch.Tensor, Stream]: ...


class MetadataEncoder(nn.Module, ABC):
    """Turns an encoded metadata vector ``[batch, in_features]`` into ``[batch, out_features]``.

    ``__init__(in_features, **options)`` must set :attr:`out_features`. The input is what
    :class:`mmfuse.metadata.MetadataEncoding` produces: one-hot categories and standardised numbers.
    """

    out_features: int

    def __init__(self, in_features: int) -> None:
        super().__init__()
        self.in_features = int(in_features)


class Combiner(nn.Module, ABC):
    """The first half of the fusion head: pooled primary and auxiliary vectors (and the encoded
    metadata, when the model has it) in, one vector of :attr:`out_features` out.

    ``__init__(primary_features, auxiliary_features, metadata_features, **options)``;
    ``metadata_features`` is 0 for a model without metadata. A combiner that needs metadata sets
    :attr:`uses_metadata`; the model then drops the fusion head, like a missing auxiliary image, for
    inputs without metadata.
    """

    out_features: int
    uses_metadata: bool = False

    def __init__(self, primary_features: int, auxiliary_features: int, metadata_features: int = 0) -> None:
        super().__init__()
        self.primary_features = int(primary_features)
        self.auxiliary_features = int(auxiliary_features)
        self.metadata_features = int(metadata_features)

    @abstractmethod
    def forward(
        self, primary: torch.Tensor, auxiliary: torch.Tensor, metadata: torch.Tensor | None = None
    ) -> torch.Tensor: ...


class Head(nn.Module, ABC):
    """One classifier per task on a pooled vector: ``forward(x) -> {task: logits [batch, classes]}``.

    ``__init__(in_features, tasks, **options)``; the model builds three (primary, auxiliary, fusion).
    """

    def __init__(self, in_features: int, tasks: Sequence[TaskSpec]) -> None:
        super().__init__()
        self.in_features = int(in_features)
        self.tasks = tuple(tasks)

    @abstractmethod
    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]: ...
