"""Built-in fusion blocks: ``aab`` (the paper's), ``bab`` (bidirectional) and ``concat`` (none).

Alignment rule shared by all blocks: the auxiliary map is resized bilinearly to the primary map's
spatial size; 1×1 convolutions map it to the channel count each attention needs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

import mmfuse
from mmfuse import spatial_attention


def resize_to(x: torch.Tensor, size: torch.Size | tuple[int, int]) -> torch.Tensor:
    """Bilinearly resize an NCHW map to ``size`` (a no-op when it already matches)."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


class AttentionOptions:
    """Options common to the attention blocks (validated once, used by ``spatial_attention``).

    The defaults are Eq. 1 exactly: attention over every position of the map, no scale, computed by the
    fastest exact kernel (``attention="auto"``: fused SDPA). ``max_key_tokens=K`` pools keys and
    values of larger maps so each attention map has at most ``K`` key positions: this project's cheaper
    approximation, used by the ``*-fast`` presets (docs/performance.md), never by the paper's names.
    """

    def __init__(
        self,
        attention: str = "auto",
        scale: float | None = 1.0,
        key_pool: int = 1,
        max_key_tokens: int | None = None,
        chunk_size: int = 1024,
    ) -> None:
        self.kwargs = {
            "implementation": attention,
            "scale": scale,
            "key_pool": key_pool,
            "max_key_tokens": max_key_tokens,
            "chunk_size": chunk_size,
        }
        spatial_attention(*(torch.zeros(1, 1, 1, 1),) * 3, **self.kwargs)  # fail early on bad options


class AsymmetricAttentionBlock(mmfuse.FusionBlock):
    """AAB (Eq. 1): an attention map made from the auxiliary features alone refines the primary ones.

    ``C_k, C_q = conv1x1(aux)``, ``D_v = conv1x1(primary)``, ``primary' = D_v · softmax(C_k C_qᵀ) + D``;
    the auxiliary map passes through unchanged.

    ``auxiliary_projection=True`` reads Sec. 3.2's "C and D of the same shape H×W×C" literally: a 1×1
    convolution and a BatchNorm (``projection``) first take the auxiliary map to the primary width, so the
    key and query convolutions act at the primary width too. Without it (the default), they read the
    auxiliary map's own width.
    """

    def __init__(
        self, primary_channels: int, auxiliary_channels: int, *, auxiliary_projection: bool = False, **options
    ) -> None:
        super().__init__(primary_channels, auxiliary_channels)
        self.attention = AttentionOptions(**options)
        self.projection = (
            nn.Sequential(
                nn.Conv2d(auxiliary_channels, primary_channels, 1), nn.BatchNorm2d(primary_channels)
            )
            if auxiliary_projection
            else None
        )
        width = primary_channels if auxiliary_projection else auxiliary_channels
        self.key = nn.Conv2d(width, primary_channels, 1)
        self.query = nn.Conv2d(width, primary_channels, 1)
        self.value = nn.Conv2d(primary_channels, primary_channels, 1)

    def forward(self, primary: torch.Tensor, auxiliary: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        aligned = resize_to(auxiliary, primary.shape[-2:])
        if self.projection is not None:
            aligned = self.projection(aligned)
        refined = spatial_attention(
            self.query(aligned), self.key(aligned), self.value(primary), **self.attention.kwargs
        )
        return refined + primary, auxiliary


class BidirectionalAttentionBlock(mmfuse.FusionBlock):
    """BAB (Fig. 3a): each modality is refined by an attention map made from the other.

    The primary side is exactly :class:`AsymmetricAttentionBlock` (``auxiliary_projection`` applies to it
    alone); the auxiliary side mirrors it
    (keys and queries from the primary map, values from the aligned auxiliary map); the refinement is
    resized back to the auxiliary's own spatial size before the residual sum.
    """

    def __init__(self, primary_channels: int, auxiliary_channels: int, **options) -> None:
        super().__init__(primary_channels, auxiliary_channels)
        self.to_primary = AsymmetricAttentionBlock(primary_channels, auxiliary_channels, **options)
        self.attention = self.to_primary.attention
        self.key = nn.Conv2d(primary_channels, auxiliary_channels, 1)
        self.query = nn.Conv2d(primary_channels, auxiliary_channels, 1)
        self.value = nn.Conv2d(auxiliary_channels, auxiliary_channels, 1)

    def forward(self, primary: torch.Tensor, auxiliary: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        refined_primary, _ = self.to_primary(primary, auxiliary)
        aligned = resize_to(auxiliary, primary.shape[-2:])
        refined = spatial_attention(
            self.query(primary), self.key(primary), self.value(aligned), **self.attention.kwargs
        )
        return refined_primary, auxiliary + resize_to(refined, auxiliary.shape[-2:])


class ConcatFusion(mmfuse.FusionBlock):
    """No interaction inside the encoders: only the fusion head combines the two modalities."""

    def forward(self, primary: torch.Tensor, auxiliary: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return primary, auxiliary


@mmfuse.hookimpl
def register_fusions(register) -> None:
    register("aab", AsymmetricAttentionBlock)
    register("bab", BidirectionalAttentionBlock)
    register("concat", ConcatFusion)
