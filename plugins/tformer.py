"""TFormer (Zhang et al., 2023) from mmfuse components: one Swin-T shared by both images, cross-attention
fusion blocks that carry a fusion stream from stage to stage, and metadata attending to the result.

Read from the authors' code (github.com/zylbuaa/TFormer, ``models/TFormer.py`` and ``models/mca.py``)
and written anew on mmfuse's public interfaces:

- ``tformer_swin_tiny``: Swin-T cut where the reference implementation's layers end, i.e. right after
  each patch merging (timm cuts before it). Stages: 56²×96, 28²×192, 14²×384, 7²×768 (merged, before the
  last blocks), 7²×768 (after the last blocks and the final norm). With ``share_encoder: true`` both
  images run through it.
- ``tformer`` fusion block (a :class:`mmfuse.StreamFusionBlock`): at stages 1–4, windowed
  cross-attention between the two modalities (queries from one, keys and values from both, relative
  position bias, MLP ×4), ``depth`` rounds each updating both streams in turn: the auxiliary first
  at stages 1–2 and the primary first at stages 3–4, as the reference does.
  Its inputs are the encoder maps plus the previous block's stream, patch-merged (2×2 → Linear) when
  the width doubles. The encoders are not changed: the stream is a branch of its own, and the fusion
  head reads it.
- the fusion head: ``metadata_attention`` combiner (each stream → Linear(768, 128) + ReLU; the
  metadata vector from the ``mlp`` metadata encoder, 20 → 128 → 128, attends to both) and a linear head.

Differences from the reference, all parameter-neutral: windows are never shifted (at 224 px no
TFormer block sees a map larger than its window with depth > 1, so the reference never shifts
either); the primary and auxiliary heads exist (mmfuse trains three heads) with ``head_weights``
putting all of Eq. 4 on the fusion head; the unused 1000-class Swin classifier is not built.
"""

from __future__ import annotations

import copy

import timm
import torch
import torch.nn.functional as F
from torch import nn

import mmfuse
from mmfuse.data.formats.derm7pt import official_metadata_encoding
from mmfuse.errors import UsageError

SWIN_TINY = "swin_tiny_patch4_window7_224"


class SwinLayerEncoder(mmfuse.Encoder):
    """A timm Swin cut after each patch merging, as the original Swin code's ``layers`` are."""

    def __init__(
        self,
        model_name: str = SWIN_TINY,
        *,
        pretrained: bool = False,
        img_size: int | None = None,
        **timm_kwargs,
    ) -> None:
        super().__init__()
        kwargs = dict(timm_kwargs)
        if img_size is not None:
            kwargs["img_size"] = img_size
        swin = timm.create_model(model_name, pretrained=pretrained, num_classes=0, **kwargs)
        if not hasattr(swin, "layers") or not hasattr(swin.layers[0], "downsample"):
            raise UsageError(f"{model_name!r} is not a timm Swin transformer (no stage-wise patch merging)")
        self.pretrained_cfg = dict(swin.pretrained_cfg)
        layers = swin.layers
        last = len(layers) - 1
        stages = [nn.Sequential(swin.patch_embed, layers[0].blocks), nn.Sequential(layers[1].downsample)]
        stages += [nn.Sequential(layers[i - 1].blocks, layers[i].downsample) for i in range(2, last + 1)]
        stages.append(nn.Sequential(layers[last].blocks, swin.norm))
        self.stages = nn.ModuleList(stages)
        dims = [int(swin.feature_info[i]["num_chs"]) for i in range(len(layers))]
        reductions = [int(swin.feature_info[i]["reduction"]) for i in range(len(layers))]
        self.channels = [*dims, dims[-1]]
        self.reductions = [*reductions, reductions[-1]]

    def forward_stage(self, index: int, x: torch.Tensor) -> torch.Tensor:
        if index > 0:
            x = x.permute(0, 2, 3, 1)  # the Swin layers are NHWC
        return self.stages[index](x).permute(0, 3, 1, 2)


def _relative_position_index(window: int, table_window: int) -> torch.Tensor:
    """Index into a ``(2·table_window − 1)²`` bias table for every pair of positions in a window."""
    coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
    delta = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (table_window - 1)
    return delta[..., 0] * (2 * table_window - 1) + delta[..., 1]


def _to_windows(x: torch.Tensor, window: int) -> torch.Tensor:
    # [B, H, W, C] (H, W multiples of window) -> [B * nW, window², C]
    b, h, w, c = x.shape
    x = x.view(b, h // window, window, w // window, window, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, window * window, c)


def _from_windows(x: torch.Tensor, window: int, b: int, h: int, w: int) -> torch.Tensor:
    c = x.shape[-1]
    x = x.view(b, h // window, w // window, window, window, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(b, h, w, c)


class WindowCrossAttentionBlock(nn.Module):
    """One TFormer cross block on NHWC maps: ``x`` queries windows of ``[x, y]``, then an MLP.

    Both inputs share the first LayerNorm (as in the reference). Inside each window, queries come from
    ``x`` and keys/values from the window of ``x`` followed by the same window of ``y``; the relative
    position bias of the window is applied to both halves. Maps smaller than the window use one window
    of their size; other sizes are zero-padded to a multiple of the window.
    """

    def __init__(self, dim: int, num_heads: int, window_size: int = 7, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        if dim % num_heads:
            raise UsageError(f"tformer block: width {dim} is not divisible by num_heads={num_heads}")
        self.num_heads = num_heads
        self.window_size = window_size
        self.norm1 = nn.LayerNorm(dim)
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window_size - 1) ** 2, num_heads))
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        self.to_q = nn.Linear(dim, dim)
        self.to_kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))
        self._index_cache: dict[int, torch.Tensor] = {}

    def _bias(self, window: int) -> torch.Tensor:
        index = self._index_cache.get(window)
        if index is None:
            index = self._index_cache[window] = _relative_position_index(window, self.window_size)
        n = window * window
        bias = self.relative_position_bias_table[index.to(self.relative_position_bias_table.device).view(-1)]
        bias = bias.view(n, n, self.num_heads).permute(2, 0, 1)
        return torch.cat([bias, bias], dim=-1)  # the same offsets for the x and the y half of the keys

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        b, h, w, c = x.shape
        window = min(self.window_size, h, w)
        shortcut = x
        xn, yn = self.norm1(x), self.norm1(y)
        pad_h, pad_w = (-h) % window, (-w) % window
        if pad_h or pad_w:
            xn = F.pad(xn, (0, 0, 0, pad_w, 0, pad_h))
            yn = F.pad(yn, (0, 0, 0, pad_w, 0, pad_h))
        hp, wp = h + pad_h, w + pad_w
        xw, yw = _to_windows(xn, window), _to_windows(yn, window)
        heads, d = self.num_heads, c // self.num_heads
        q = self.to_q(xw).view(xw.shape[0], -1, heads, d).transpose(1, 2)
        k, v = self.to_kv(torch.cat([xw, yw], dim=1)).chunk(2, dim=-1)
        k = k.reshape(xw.shape[0], -1, heads, d).transpose(1, 2)
        v = v.reshape(xw.shape[0], -1, heads, d).transpose(1, 2)
        attended = F.scaled_dot_product_attention(q, k, v, attn_mask=self._bias(window).to(q.dtype))
        attended = self.proj(attended.transpose(1, 2).reshape(xw.shape[0], -1, c))
        out = _from_windows(attended, window, b, hp, wp)[:, :h, :w]
        x = shortcut + out
        return x + self.mlp(self.norm2(x))


class StreamMerging(nn.Module):
    """2×2 patch merging of an NHWC stream into ``out_channels`` (``LayerNorm(4C) → Linear``)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(4 * in_channels)
        self.reduction = nn.Linear(4 * in_channels, out_channels, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[1:3]
        x = F.pad(x, (0, 0, 0, w % 2, 0, h % 2))
        parts = [x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]]
        return self.reduction(self.norm(torch.cat(parts, dim=-1)))


class TFormerFusion(mmfuse.StreamFusionBlock):
    """TFormer's fusion block at one stage; see the module docstring.

    Options: ``depth`` (rounds of cross-attention), ``num_heads``, ``window_size`` (7), ``mlp_ratio``
    (4), ``update_first`` (``"primary"`` or ``"auxiliary"``: which stream each round updates first,
    the other then attending to the updated one). When the encoders differ in width or size, the
    auxiliary map is resized and projected (1×1) to the primary's; with TFormer's shared encoder it
    never is.
    """

    def __init__(
        self,
        primary_channels: int,
        auxiliary_channels: int,
        *,
        stream_channels: tuple[int, int] | None = None,
        depth: int = 1,
        num_heads: int = 6,
        window_size: int = 7,
        mlp_ratio: float = 4.0,
        update_first: str = "primary",
    ) -> None:
        super().__init__(primary_channels, auxiliary_channels, stream_channels=stream_channels)
        if update_first not in ("primary", "auxiliary"):
            raise UsageError(
                f"tformer block: update_first must be 'primary' or 'auxiliary', got {update_first!r}"
            )
        self.update_first = update_first
        dim = primary_channels
        self.align = nn.Conv2d(auxiliary_channels, dim, 1) if auxiliary_channels != dim else nn.Identity()
        self.merge = nn.ModuleList()
        if stream_channels is not None and tuple(stream_channels) != (dim, dim):
            self.merge = nn.ModuleList(StreamMerging(c, dim) for c in stream_channels)
        # rounds[i][0] updates the primary stream and rounds[i][1] the auxiliary, whichever goes first.
        self.rounds = nn.ModuleList(
            nn.ModuleList(WindowCrossAttentionBlock(dim, num_heads, window_size, mlp_ratio) for _ in range(2))
            for _ in range(depth)
        )
        self.out_stream_channels = (dim, dim)

    def _carry(self, index: int, previous: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        stream = previous.permute(0, 2, 3, 1)
        if len(self.merge):
            stream = self.merge[index](stream)
        if tuple(stream.shape[1:3]) != size:
            raise UsageError(
                f"tformer block: the incoming fusion stream is {tuple(stream.shape[1:3])} after merging, "
                f"but this stage's maps are {size}; fuse stages whose sizes halve (or stay) in turn"
            )
        return stream

    def forward(self, primary, auxiliary, stream):
        size = tuple(primary.shape[-2:])
        aligned = auxiliary
        if tuple(aligned.shape[-2:]) != size:
            aligned = F.interpolate(aligned, size=size, mode="bilinear", align_corners=False)
        x = primary.permute(0, 2, 3, 1)
        y = self.align(aligned).permute(0, 2, 3, 1)
        if stream is not None:
            x = x + self._carry(0, stream[0], size)
            y = y + self._carry(1, stream[1], size)
        primary_first = self.update_first == "primary"
        for to_x, to_y in self.rounds:
            # The reference adds each block's output to its input once more (a second residual).
            if primary_first:
                x = to_x(x, y) + x
                y = to_y(y, x) + y
            else:
                y = to_y(y, x) + y
                x = to_x(x, y) + x
        return primary, auxiliary, (x.permute(0, 3, 1, 2), y.permute(0, 3, 1, 2))


# Stage options of the reference: (depth, heads, stream updated first) of its four cross-attention
# blocks. Its first two blocks take (clinical, dermoscopy), the last two (dermoscopy, clinical), and
# each updates its first argument first; dermoscopy is the primary modality.
REFERENCE_BLOCKS = {
    "1": (1, 6, "auxiliary"),
    "2": (1, 6, "auxiliary"),
    "3": (2, 6, "primary"),
    "4": (1, 12, "primary"),
}

TFORMER_PRESET = {
    "primary": "tformer_swin_tiny",
    "auxiliary": "tformer_swin_tiny",
    "share_encoder": True,
    "fusion": "tformer",
    "fusion_stages": [1, 2, 3, 4],
    "fusion_stage_options": {
        s: {"depth": d, "num_heads": h, "update_first": first}
        for s, (d, h, first) in REFERENCE_BLOCKS.items()
    },
    "combiner": "metadata_attention",
    "combiner_options": {"dim": 128, "num_heads": 8, "mlp_ratio": 1.0},
    "metadata": official_metadata_encoding().to_dict(),
    "metadata_encoder": "mlp",
    "metadata_encoder_options": {"hidden": 128, "out_features": 128, "dropout": 0.3},
    "head_weights": {"primary": 0.0, "auxiliary": 0.0, "fusion": 1.0},
}


def _swin_factory(pretrained: bool = False, **options) -> SwinLayerEncoder:
    return SwinLayerEncoder(SWIN_TINY, pretrained=pretrained, **options)


@mmfuse.hookimpl
def register_encoders(register) -> None:
    register("tformer_swin_tiny", _swin_factory)


@mmfuse.hookimpl
def register_fusions(register) -> None:
    register("tformer", TFormerFusion)


@mmfuse.hookimpl
def register_presets(register) -> None:
    register("tformer", copy.deepcopy(TFORMER_PRESET))
