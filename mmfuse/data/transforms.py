"""The one inference preprocessing, as data: :func:`resolve_data_config` and :func:`create_transform`.

As in timm, a model's preprocessing is a plain dict (``resolve_data_config(model)``) and
``create_transform(**data_config)`` turns it into the callable that prepares an image. mmfuse writes the
same dict into config.json and the ONNX metadata (``preprocessing``), and ``mmfuse predict``,
``FusionModel.predict`` on images, ``mmfuse evaluate`` and the deployment recipe of docs/deploy.md all
follow it, so a probability never depends on which of them prepared the image.

The steps, in order (all with Pillow):

1. decode to RGB; a JPEG decodes at the smallest 1/2, 1/4 or 1/8 scale that is still at least
   ``resize_steps[0]`` on both sides (``Image.draft``: what the prepared cache does, and much faster);
2. resize (squash: the whole image, aspect ratio not kept, no crop) to ``resize_steps[0]``, with
   ``interpolation`` and ``reducing_gap`` — the size the prepared cache stores (the model's input plus a
   margin that training's zoom and rotation use);
3. resize to the model's input size ``input_size[1:]`` with ``interpolation`` (no reducing gap);
4. ``(pixels / 255 - mean) / std`` per channel in float32, channels first (RGB order).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from mmfuse.data.images import augmentation_margin, check_pixel_count, open_rgb, to_rgb8
from mmfuse.errors import UsageError

INTERPOLATIONS = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}
DATA_CONFIG_KEYS = (
    "input_size",
    "interpolation",
    "crop_pct",
    "crop_mode",
    "resize_steps",
    "reducing_gap",
    "jpeg_draft",
    "mean",
    "std",
    "pixel_scale",
    "channel_order",
    "layout",
    "library",
)

ImageLike = "str | os.PathLike | Image.Image | np.ndarray"


def data_config_for(img_size: int, mean: Sequence[float], std: Sequence[float]) -> dict:
    """The complete preprocessing of a model with input ``img_size`` and normalisation ``mean``/``std``."""
    size = int(img_size)
    return {
        "input_size": [3, size, size],
        "interpolation": "bilinear",
        "crop_pct": 1.0,
        "crop_mode": "squash",
        "resize_steps": [size + augmentation_margin(size), size],
        "reducing_gap": 2.0,
        "jpeg_draft": True,
        "mean": [float(v) for v in mean],
        "std": [float(v) for v in std],
        "pixel_scale": 255.0,
        "channel_order": "RGB",
        "layout": "NCHW",
        "library": "Pillow",
    }


def resolve_data_config(model_or_config: Any) -> dict:
    """The preprocessing dict of a :class:`~mmfuse.FusionModel`, a config.json dict or ONNX ``mmfuse_config``.

    A config that stores ``preprocessing`` (every model saved by mmfuse does) gives that; an older one
    without it gives what its ``img_size``, ``mean`` and ``std`` imply.
    """
    config = model_or_config.config if hasattr(model_or_config, "config") else model_or_config
    if not isinstance(config, Mapping):
        raise TypeError(f"expected a FusionModel or its config mapping, got {type(model_or_config).__name__}")
    stored = config.get("preprocessing")
    if isinstance(stored, Mapping):
        return dict(stored)
    return data_config_for(config["img_size"], config["mean"], config["std"])


class ImageTransform:
    """``transform(image) -> float32 [3, S, S]``; ``transform.batch(images) -> [B, 3, S, S]``.

    ``image`` is a file path, a PIL image, or a uint8 ``[H, W, 3]`` RGB array. Paths and JPEG images not
    yet decoded (``Image.open(path)``) decode at reduced scale as step 1 says; decoded pixels start at step 2.
    """

    def __init__(self, **data_config: Any) -> None:
        unknown = set(data_config) - set(DATA_CONFIG_KEYS)
        if unknown:
            raise UsageError(f"unknown preprocessing keys {sorted(unknown)}; known: {list(DATA_CONFIG_KEYS)}")
        config = {**data_config_for(224, (0.5,) * 3, (0.5,) * 3), **data_config}
        if config["interpolation"] not in INTERPOLATIONS:
            raise UsageError(
                f"preprocessing interpolation {config['interpolation']!r} is not one of {list(INTERPOLATIONS)}"
            )
        if config["crop_mode"] != "squash" or float(config["crop_pct"]) != 1.0:
            raise UsageError(
                "mmfuse models take the whole image squashed to a square (crop_mode 'squash', crop_pct 1.0), "
                f"got crop_mode {config['crop_mode']!r}, crop_pct {config['crop_pct']!r}"
            )
        if config["channel_order"] != "RGB" or config["layout"] != "NCHW":
            raise UsageError("mmfuse models take RGB images in NCHW layout")
        self.config = config
        self.sizes = [int(s) for s in config["resize_steps"]]
        if self.sizes[-1] != int(config["input_size"][-1]):
            raise UsageError(
                f"the last resize step {self.sizes[-1]} must be the input size {config['input_size']}"
            )
        self.resample = INTERPOLATIONS[config["interpolation"]]
        self.mean = np.asarray(config["mean"], dtype=np.float32)
        self.std = np.asarray(config["std"], dtype=np.float32)
        self.scale = np.float32(config["pixel_scale"])

    def __repr__(self) -> str:
        return f"ImageTransform({self.config})"

    def _open(self, image) -> Image.Image:
        if isinstance(image, (str, os.PathLike)):
            # The dataset's own decoder: supported formats only, the pixel limit checked from the header.
            return open_rgb(Path(image), self.sizes[0] if self.config["jpeg_draft"] else None)
        if isinstance(image, Image.Image):
            return self._decode(image, Path(getattr(image, "filename", "") or "<PIL image>"))
        if isinstance(image, np.ndarray):
            if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
                raise UsageError(
                    f"an image array must be uint8 [H, W, 3] RGB, got {image.dtype} {list(image.shape)}"
                )
            return Image.fromarray(np.ascontiguousarray(image), "RGB")
        raise TypeError(
            f"expected an image path, a PIL image or a uint8 [H, W, 3] array, got {type(image).__name__}"
        )

    def _decode(self, image: Image.Image, source: Path) -> Image.Image:
        check_pixel_count(source, image.size)
        if self.config["jpeg_draft"] and image.format == "JPEG":
            first = self.sizes[0]
            image.draft("RGB", (first, first))  # no effect once the image has been decoded
        image.load()
        return to_rgb8(image, source)  # as the dataset decodes: 16-bit greyscale rescaled, not clipped

    def pixels(self, image) -> np.ndarray:
        """uint8 [S, S, 3] after the resize steps (before normalisation)."""
        img = self._open(image)
        for step, size in enumerate(self.sizes):
            gap = float(self.config["reducing_gap"]) if step == 0 and self.config["reducing_gap"] else None
            img = img.resize((size, size), self.resample, reducing_gap=gap)
        return np.asarray(img)

    def normalize(self, pixels: np.ndarray) -> torch.Tensor:
        x = (pixels.astype(np.float32) / self.scale - self.mean) / self.std
        return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))

    def __call__(self, image, seed: int | None = None) -> torch.Tensor:  # seed: the Augmenter protocol
        return self.normalize(self.pixels(image))

    def batch(self, images: Sequence) -> torch.Tensor:
        return torch.stack([self(image) for image in images])


def create_transform(**data_config: Any) -> ImageTransform:
    """The inference transform of a preprocessing dict (``create_transform(**resolve_data_config(model))``)."""
    return ImageTransform(**data_config)


def images_to_batch(
    images: Any,
    data_config: Mapping[str, Any],
    *,
    name: str = "images",
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """A model's input batch from what a user holds, and which of its rows hold an image.

    ``images`` is a normalised tensor (``[B, 3, S, S]``, or one ``[3, S, S]`` given a batch axis), returned
    as it is; or an image (a path, a PIL image, a uint8 ``[H, W, 3]`` RGB array) or a list of them, prepared
    with ``create_transform(**data_config)`` and moved to ``device``. ``None`` entries of a list (a case
    without that image) become zeros, marked False in the bool ``[B]`` mask; the mask is ``None`` when every
    row holds an image. ``None``, or a list of ``None`` only, gives ``(None, None)``. ``name`` names the
    argument in errors.
    """
    if images is None:
        return None, None
    if isinstance(images, torch.Tensor):
        if images.ndim == 3:
            images = images.unsqueeze(0)
        if images.ndim != 4:
            raise UsageError(f"{name} must be [B, 3, H, W] or [3, H, W], got shape {list(images.shape)}")
        return images, None
    items = list(images) if isinstance(images, (list, tuple)) else [images]
    if not items:
        raise UsageError(f"{name} is an empty list")
    transform = create_transform(**data_config)
    tensors = [None if item is None else transform(item) for item in items]
    present = [t is not None for t in tensors]
    if not any(present):
        return None, None
    blank = torch.zeros_like(next(t for t in tensors if t is not None))
    batch = torch.stack([blank if t is None else t for t in tensors]).to(device)
    return batch, (None if all(present) else torch.tensor(present, device=device))
