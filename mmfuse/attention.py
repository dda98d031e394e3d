"""Spatial attention over NCHW maps, as pure functions (the fusion blocks are thin modules on top).

All implementations compute, for every output position ``j``,
``out_j = sum_i softmax_i(scale * q_j · k_i) v_i`` — Eq. 1 of the AMMFM paper read as the
convex combination it describes (``M = softmax(C_k C_qᵀ)`` normalised over the key axis,
``D_refined = D_v · M``). They differ only in cost:

- ``"materialized"`` builds the N×N map explicitly: the textbook transcription, O(N²) memory.
- ``"sdpa"`` calls :func:`torch.nn.functional.scaled_dot_product_attention`, which picks a fused
  kernel (flash / memory-efficient on GPU, a blocked kernel on CPU) and never stores the map on GPU.
- ``"chunked"`` is the exact computation over blocks of ``chunk_size`` queries: the softmax runs over
  all keys for each block, so the result equals the others while only ``chunk_size × N`` scores exist.
- ``"auto"`` (the default) is ``"sdpa"``: measured against ``"chunked"`` on CPU it was the faster and
  the leaner (docs/performance.md, ``benchmarks/attention.py``), and on CUDA it is the fused kernel.
- ``key_pool=s`` (any implementation) average-pools keys and values by ``s`` first, so the map is
  N×(N/s²): the cheap variant for high-resolution stages. ``max_key_tokens=K`` picks the smallest
  such ``s`` that leaves at most ``K`` key positions, so one setting suits every stage.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from mmfuse.errors import UsageError

IMPLEMENTATIONS = ("auto", "materialized", "sdpa", "chunked")
CHUNK_SIZE = 1024


def _tokens(x: torch.Tensor) -> torch.Tensor:
    # NCHW -> N x HW x C
    return x.flatten(2).transpose(1, 2)


def spatial_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    *,
    scale: float | None = 1.0,
    implementation: str = "auto",
    key_pool: int = 1,
    max_key_tokens: int | None = None,
    chunk_size: int = CHUNK_SIZE,
) -> torch.Tensor:
    """Attend from every position of ``query`` to the positions of ``key``/``value``.

    ``query``, ``key`` and ``value`` are NCHW with the same spatial size; ``query`` and ``key`` share
    their channel count. ``scale=None`` means ``1/sqrt(C)``; the paper's Eq. 1 has no scale (1.0).
    Returns a map with ``value``'s shape.
    """
    key_pool = effective_key_pool(value.shape[-2] * value.shape[-1], key_pool, max_key_tokens)
    if implementation not in IMPLEMENTATIONS:
        raise UsageError(
            f"unknown attention implementation {implementation!r}; choose from {IMPLEMENTATIONS}"
        )
    if key_pool < 1:
        raise UsageError(f"key_pool must be >= 1, got {key_pool}")
    if chunk_size < 1:
        raise UsageError(f"chunk_size must be >= 1, got {chunk_size}")
    batch, channels, height, width = value.shape
    if key_pool > 1:
        key = F.avg_pool2d(key, key_pool, ceil_mode=True)
        value_tokens = _tokens(F.avg_pool2d(value, key_pool, ceil_mode=True))
    else:
        value_tokens = _tokens(value)
    q, k = _tokens(query), _tokens(key)
    if scale is None:
        scale = q.shape[-1] ** -0.5
    if implementation == "materialized":
        out = torch.softmax(scale * q @ k.transpose(1, 2), dim=-1) @ value_tokens
    elif implementation == "chunked":
        kt = k.transpose(1, 2)
        out = torch.cat(
            [
                torch.softmax(scale * block @ kt, dim=-1) @ value_tokens
                for block in q.split(chunk_size, dim=1)
            ],
            dim=1,
        )
    else:
        # Fused kernels need contiguous inputs; on transposed views SDPA silently falls back to the
        # unfused math path (no faster than "materialized", and it stores the map).
        out = F.scaled_dot_product_attention(
            q.contiguous(), k.contiguous(), value_tokens.contiguous(), scale=scale
        )
    return out.transpose(1, 2).reshape(batch, channels, height, width)


def effective_key_pool(tokens: int, key_pool: int = 1, max_key_tokens: int | None = None) -> int:
    """The pooling factor applied to keys and values for a map of ``tokens`` positions."""
    if max_key_tokens is not None:
        if max_key_tokens < 1:
            raise UsageError(f"max_key_tokens must be >= 1, got {max_key_tokens}")
        key_pool = max(key_pool, math.ceil(math.sqrt(tokens / max_key_tokens)))
    return key_pool


def attention_flops(tokens: int, key_tokens: int, qk_channels: int, v_channels: int) -> int:
    """Multiply-accumulate count of one attention map and its application (for reports)."""
    return tokens * key_tokens * (qk_channels + v_channels)
