"""Built-in fusion-head combiners: ``concat`` (the paper's), ``sum`` (FusionM4Net) and
``metadata_attention`` (TFormer: the metadata attends to the image features).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

import mmfuse
from mmfuse.errors import UsageError


class ConcatCombiner(mmfuse.Combiner):
    """``[primary, auxiliary(, metadata)]``: the AMMFM fusion head's input, with metadata appended."""

    def __init__(self, primary_features: int, auxiliary_features: int, metadata_features: int = 0) -> None:
        super().__init__(primary_features, auxiliary_features, metadata_features)
        self.uses_metadata = metadata_features > 0
        self.out_features = primary_features + auxiliary_features + metadata_features

    def forward(self, primary, auxiliary, metadata=None):
        parts = [primary, auxiliary] if not self.uses_metadata else [primary, auxiliary, metadata]
        return torch.cat(parts, dim=1)


class SumCombiner(mmfuse.Combiner):
    """``primary + auxiliary`` (FusionM4Net's fusion branch), with metadata appended when present.

    Both vectors must have the same width: FusionM4Net adds two 2048-wide ResNet-50 vectors.
    """

    def __init__(self, primary_features: int, auxiliary_features: int, metadata_features: int = 0) -> None:
        super().__init__(primary_features, auxiliary_features, metadata_features)
        if primary_features != auxiliary_features:
            raise UsageError(
                f"the sum combiner adds the pooled vectors, so their widths must match; got primary "
                f"{primary_features} and auxiliary {auxiliary_features} (use combiner='concat')"
            )
        self.uses_metadata = metadata_features > 0
        self.out_features = primary_features + metadata_features

    def forward(self, primary, auxiliary, metadata=None):
        fused = primary + auxiliary
        return fused if not self.uses_metadata else torch.cat([fused, metadata], dim=1)


class TokenCrossAttention(nn.Module):
    """A pre-norm transformer layer in which ``query`` tokens attend to themselves and ``context``.

    Keys and values come from ``[query, context]`` and the query is added back before the output
    projection (both as in TFormer's cross-attention); the MLP widens by ``mlp_ratio``. Shapes: ``query [B, Nq, C]``, ``context [B, Nc, C]`` → ``[B, Nq, C]``.
    """

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 1.0) -> None:
        super().__init__()
        if dim % num_heads:
            raise UsageError(f"width {dim} is not divisible by {num_heads} attention heads")
        self.num_heads = num_heads
        self.norm_query = nn.LayerNorm(dim)
        self.norm_context = nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, dim, bias=False)
        self.to_kv = nn.Linear(dim, 2 * dim, bias=False)
        self.proj = nn.Linear(dim, dim)
        self.norm_mlp = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        return x.view(b, n, self.num_heads, c // self.num_heads).transpose(1, 2)

    def forward(self, query: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        q_in = self.norm_query(query)
        keys = torch.cat([q_in, self.norm_context(context)], dim=1)
        k, v = self.to_kv(keys).chunk(2, dim=-1)
        attended = F.scaled_dot_product_attention(
            self._heads(self.to_q(q_in)), self._heads(k), self._heads(v)
        )
        b, _, n, _ = attended.shape
        # The reference adds the (normalised) query to the attended values before ``proj``, and the
        # layer's residual adds it once more after.
        x = q_in + self.proj(attended.transpose(1, 2).reshape(b, n, -1) + q_in)
        return x + self.mlp(self.norm_mlp(x))


class MetadataAttentionCombiner(mmfuse.Combiner):
    """TFormer's fusion head: each branch → ``Linear → ReLU`` to ``dim``; the encoded metadata, widened
    to ``2·dim``, attends to the concatenated image vector; the result (narrowed back, plus the metadata
    itself) is concatenated with the projected primary vector. ``out_features = dim + metadata width``.
    """

    uses_metadata = True

    def __init__(
        self,
        primary_features: int,
        auxiliary_features: int,
        metadata_features: int = 0,
        dim: int = 128,
        num_heads: int = 8,
        mlp_ratio: float = 1.0,
    ) -> None:
        super().__init__(primary_features, auxiliary_features, metadata_features)
        if metadata_features < 1:
            raise UsageError(
                "the metadata_attention combiner needs metadata: build the model with a metadata "
                "encoding (data.metadata in a run config, or metadata=... in build_model)"
            )
        width = 2 * dim
        self.primary_proj = nn.Sequential(nn.Linear(primary_features, dim), nn.ReLU())
        self.auxiliary_proj = nn.Sequential(nn.Linear(auxiliary_features, dim), nn.ReLU())
        widen = metadata_features != width
        self.widen = nn.Linear(metadata_features, width) if widen else nn.Identity()
        self.attention = TokenCrossAttention(width, num_heads, mlp_ratio)
        self.narrow = nn.Linear(width, metadata_features) if widen else nn.Identity()
        self.out_features = dim + metadata_features

    def forward(self, primary, auxiliary, metadata=None):
        if metadata is None:
            raise UsageError("the metadata_attention combiner needs metadata")
        p = self.primary_proj(primary)
        images = torch.cat([self.auxiliary_proj(auxiliary), p], dim=1).unsqueeze(1)
        attended = self.narrow(self.attention(self.widen(metadata).unsqueeze(1), images)).squeeze(1)
        return torch.cat([p, attended + metadata], dim=1)


@mmfuse.hookimpl
def register_combiners(register) -> None:
    register("concat", ConcatCombiner)
    register("sum", SumCombiner)
    register("metadata_attention", MetadataAttentionCombiner)
