"""Augmentation of a whole uint8 batch in torch, on whatever device the batch lives on.

Flips, shift/scale/rotate and the resize to the model's size are one affine map per image, so a
single ``grid_sample`` does all of them; brightness and normalisation follow. Every random choice
comes from the ``torch.Generator`` the caller passes, so a training loop that seeds it from
(seed, epoch, step) replays exactly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F  # noqa: N812

from mmfuse.errors import DataError


class BatchAugmenter:
    """``augmenter(batch_uint8, generator) -> float [N, 3, S, S]`` normalised with ``mean``/``std``.

    The batch may be NCHW or NHWC (a last dimension of 3 with a second one that is not 3). Options
    mean what they mean in :class:`mmfuse.data.augment.AugmentOptions`.
    """

    def __init__(
        self,
        *,
        train: bool,
        img_size: int,
        mean: Sequence[float],
        std: Sequence[float],
        hflip: float = 0.5,
        vflip: float = 0.5,
        shift: float = 0.0625,
        scale: float = 0.1,
        rotate: float = 45.0,
        p_affine: float = 0.5,
        brightness: float = 0.2,
        p_brightness: float = 0.5,
    ) -> None:
        self.train = train
        self.img_size = int(img_size)
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        self.hflip, self.vflip = hflip, vflip
        self.shift, self.scale, self.rotate, self.p_affine = shift, scale, rotate, p_affine
        self.brightness, self.p_brightness = brightness, p_brightness

    def sample_params(self, n: int, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """The random choices for ``n`` images: ``theta`` [n, 2, 3] (output -> input) and ``brightness`` [n]."""
        device = generator.device if generator is not None else torch.device("cpu")

        def uniform(low: float, high: float) -> torch.Tensor:
            return low + (high - low) * torch.rand(n, generator=generator, device=device)

        def chance(p: float) -> torch.Tensor:
            return torch.rand(n, generator=generator, device=device) < p

        sx = torch.where(chance(self.hflip), -1.0, 1.0)
        sy = torch.where(chance(self.vflip), -1.0, 1.0)
        affine = chance(self.p_affine)
        angle = torch.where(affine, uniform(-self.rotate, self.rotate), 0.0) * (math.pi / 180)
        zoom = torch.where(affine, uniform(1 - self.scale, 1 + self.scale), 1.0)
        tx = torch.where(affine, uniform(-self.shift, self.shift), 0.0) * 2
        ty = torch.where(affine, uniform(-self.shift, self.shift), 0.0) * 2
        beta = torch.where(chance(self.p_brightness), uniform(-self.brightness, self.brightness), 0.0)
        cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
        theta = torch.stack(
            [
                torch.stack([cos * sx, -sin * sy, -tx], dim=-1),
                torch.stack([sin * sx, cos * sy, -ty], dim=-1),
            ],
            dim=1,
        )
        return {"theta": theta, "brightness": beta}

    def apply(self, batch: torch.Tensor, params: dict[str, torch.Tensor] | None) -> torch.Tensor:
        """Deterministic part: warp with ``params`` (none: plain resize), then brightness and normalise."""
        x = _to_nchw(batch).float().div_(255)
        n, c, _, _ = x.shape
        size = self.img_size
        if params is None:
            if x.shape[-2:] != (size, size):
                x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        else:
            theta = params["theta"].to(x.device, x.dtype)
            grid = F.affine_grid(theta, [n, c, size, size], align_corners=False)
            x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
            x = (x + params["brightness"].to(x.device, x.dtype).view(n, 1, 1, 1)).clamp_(0, 1)
        mean = torch.tensor(self.mean, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
        std = torch.tensor(self.std, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
        return (x - mean) / std

    def __call__(self, batch: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        params = self.sample_params(batch.shape[0], generator) if self.train else None
        return self.apply(batch, params)


def _to_nchw(batch: torch.Tensor) -> torch.Tensor:
    if batch.ndim != 4:
        raise DataError(f"expected a batch [N, C, H, W] or [N, H, W, C], got shape {tuple(batch.shape)}")
    if batch.shape[1] != 3 and batch.shape[-1] == 3:
        batch = batch.permute(0, 3, 1, 2)
    return batch
