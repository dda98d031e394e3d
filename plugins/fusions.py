"""Built-in fusion blocks: ``aab`` (the paper's), ``bab`` (bidirectional) and ``concat`` (none).

Alignment rule shared by all blocks: the auxiliary map is resized bilinearly to the primary map's
spatial size; 1×1 convolutions map it to the channel count each attention needs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

import mmfuse
from mmfuse.attention import spatial_attention


def resize_to(x: torch.Tensor, size: torch.Size | tuple[int, int]) -> torch.Tensor:
    """Bilinearly resize an NCHW map to ``size`` (a no-op when it already matches)."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


class AttentionOptions:
    """Options common to the attention blocks (validated once, used by ``spatial_attention``).

    ``max_key_tokens=196`` (the default, chosen by measurement: docs/performance.md) pools keys and
    values of maps larger than 14×14 so each attention map has at most 196 key positions; at 224 px
    that touches the reduction-4 and reduction-8 stages, not the default reduction-16 one. ``max_key_tokens=None`` is Eq. 1 exactly at every size.
    """

    def __init__(
        self,
        attention: str = "sdpa",
        scale: float | None = 1.0,
        key_pool: int = 1,
        max_key_tokens: int | None = 196,
    ) -> None:
        self.kwargs = {
            "implementation": attention,
            "scale": scale,
            "key_pool": key_pool,
            "max_key_tokens": max_key_tokens,
        }
        spatial_attention(*(torch.zeros(1, 1, 1, 1),) * 3, **self.kwargs)  # fail early on bad options


class AsymmetricAttentionBlock(mmfuse.FusionBlock):
    """AAB (Eq. 1): an attention map made from the auxiliary features alone refines the primary ones.

    ``C_k, C_q = conv1x1(aux)``, ``D_v = conv1x1(primary)``, ``primary' = D_v · softmax(C_k C_qᵀ) + D``;
    the auxiliary map passes through unchanged.
    """

    def __init__(self, primary_channels: int, auxiliary_channels: int, **options) -> None:
        super().__init__(primary_channels, auxiliary_channels)
        self.attention = AttentionOptions(**options)
        self.key = nn.Conv2d(auxiliary_channels, primary_channels, 1)
        self.query = nn.Conv2d(auxiliary_channels, primary_channels, 1)
        self.value = nn.Conv2d(primary_channels, primary_channels, 1)

    def forward(self, primary: torch.Tensor, auxiliary: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        aligned = resize_to(auxiliary, primary.shape[-2:])
        refined = spatial_attention(
            self.query(aligned), self.key(aligned), self.value(primary), **self.attention.kwargs
        )
        return refined + primary, auxiliary


class BidirectionalAttentionBlock(mmfuse.FusionBlock):
    """BAB (Fig. 3a): each modality is refined by an attention map made from the other.

    The primary side is exactly :class:`AsymmetricAttentionBlock`; the auxiliary side mirrors it
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
