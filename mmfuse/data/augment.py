"""The project's augmentation interface: per-modality pipelines, two backends, batch augmentation, TTA.

Model and training code depend on this module only. :func:`build_augmenter` returns a callable
``augmenter(image_uint8_hwc, seed=None) -> float tensor [3, S, S]`` (normalised); the albumentations
backend (the paper's operations) and the torchvision.transforms.v2 backend are interchangeable, and
albumentations is imported only inside its backend. With a ``seed`` the random choices are a pure
function of it (see :func:`sample_seed`), so a resumed run sees the same augmentations.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields, replace
from typing import Protocol

import numpy as np
import torch

from mmfuse.data.batch_augment import BatchAugmenter
from mmfuse.errors import DataError

MODALITIES = ("primary", "auxiliary")
BACKENDS = ("albumentations", "torchvision")

__all__ = [
    "BACKENDS",
    "MODALITIES",
    "TTA_VIEWS",
    "AugmentOptions",
    "Augmenter",
    "BatchAugmenter",
    "apply_tta_view",
    "build_augmenter",
    "sample_seed",
]


class Augmenter(Protocol):
    def __call__(self, image: np.ndarray, seed: int | None = None) -> torch.Tensor: ...


@dataclass(frozen=True)
class AugmentOptions:
    """Training-time operations (the paper: flipping, shifting, scaling, rotating, brightening).

    Probabilities are per image; ``shift`` is a fraction of the side, ``scale`` the +/- zoom,
    ``rotate`` degrees, ``brightness`` the +/- change as a fraction of full intensity.
    """

    hflip: float = 0.5
    vflip: float = 0.5
    shift: float = 0.0625
    scale: float = 0.1
    rotate: float = 45.0
    p_affine: float = 0.5
    brightness: float = 0.2
    p_brightness: float = 0.5

    @classmethod
    def from_options(cls, **options: float) -> AugmentOptions:
        known = {f.name for f in fields(cls)}
        unknown = set(options) - known
        if unknown:
            raise DataError(f"unknown augmentation options {sorted(unknown)}; known: {sorted(known)}")
        return replace(cls(), **{k: float(v) for k, v in options.items()})


def sample_seed(seed: int, epoch: int, index: int, stream: int = 0) -> int:
    """A 63-bit seed that depends only on its arguments (never on worker count or call order)."""
    state = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(epoch), int(index), int(stream)])
    return int(state.generate_state(2, np.uint64)[0] >> np.uint64(1))


def build_augmenter(
    modality: str,
    *,
    train: bool,
    img_size: int,
    mean: Sequence[float],
    std: Sequence[float],
    backend: str = "albumentations",
    **options: float,
) -> Augmenter:
    """The pipeline for one modality: train-time operations (when ``train``), resize, normalise.

    Without ``train`` it is the model's inference preprocessing (:mod:`mmfuse.data.transforms`) whatever
    the backend, so evaluation prepares an image exactly as ``mmfuse predict`` and the ONNX recipe do.
    """
    if modality not in MODALITIES:
        raise DataError(f"unknown modality {modality!r}; expected one of {MODALITIES}")
    opts = AugmentOptions.from_options(**options)
    if backend not in BACKENDS:
        raise DataError(f"unknown augmentation backend {backend!r}; expected one of {BACKENDS}")
    if not train:
        from mmfuse.data.transforms import create_transform, data_config_for

        return create_transform(**data_config_for(img_size, mean, std))
    if backend == "albumentations":
        return _AlbumentationsAugmenter(train, img_size, mean, std, opts)
    if backend == "torchvision":
        return _TorchvisionAugmenter(train, img_size, mean, std, opts)
    raise DataError(f"unknown augmentation backend {backend!r}; expected one of {BACKENDS}")


class _AlbumentationsAugmenter:
    def __init__(self, train: bool, size: int, mean, std, opts: AugmentOptions) -> None:
        import albumentations as A  # noqa: N812 - the library's own convention
        import cv2

        ops: list = []
        if train:
            ops += [
                A.HorizontalFlip(p=opts.hflip),
                A.VerticalFlip(p=opts.vflip),
                A.Affine(
                    translate_percent=(-opts.shift, opts.shift),
                    scale=(1 - opts.scale, 1 + opts.scale),
                    rotate=(-opts.rotate, opts.rotate),
                    border_mode=cv2.BORDER_REFLECT_101,
                    p=opts.p_affine,
                ),
                A.RandomBrightnessContrast(
                    brightness_limit=opts.brightness, contrast_limit=0.0, p=opts.p_brightness
                ),
            ]
        ops += [
            A.Resize(size, size, interpolation=cv2.INTER_LINEAR),
            A.Normalize(mean=tuple(mean), std=tuple(std), max_pixel_value=255.0),
        ]
        self._ops = ops
        self._pipeline = A.Compose(ops, seed=0)

    def __call__(self, image: np.ndarray, seed: int | None = None) -> torch.Tensor:
        if seed is not None:
            # Compose.set_random_seed gives every transform the same seed (so hflip and vflip would
            # always agree); each transform gets its own stream instead.
            for position, op in enumerate(self._ops):
                op.set_random_seed(sample_seed(seed, 0, 0, position))
        out = self._pipeline(image=image)["image"]
        # HWC -> CHW in numpy: a strided torch copy is slow with several intra-op threads
        return torch.from_numpy(np.ascontiguousarray(out.transpose(2, 0, 1), dtype=np.float32))


class _TorchvisionAugmenter:
    def __init__(self, train: bool, size: int, mean, std, opts: AugmentOptions) -> None:
        from torchvision.transforms import v2

        ops: list = [v2.ToImage()]
        if train:
            ops += [
                v2.RandomHorizontalFlip(opts.hflip),
                v2.RandomVerticalFlip(opts.vflip),
                v2.RandomApply(
                    [
                        v2.RandomAffine(
                            degrees=opts.rotate,
                            translate=(opts.shift, opts.shift),
                            scale=(1 - opts.scale, 1 + opts.scale),
                        )
                    ],
                    p=opts.p_affine,
                ),
                v2.RandomApply([v2.ColorJitter(brightness=opts.brightness)], p=opts.p_brightness),
            ]
        ops += [
            v2.Resize((size, size), antialias=True),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(mean=list(mean), std=list(std)),
        ]
        self._pipeline = v2.Compose(ops)

    def __call__(self, image: np.ndarray, seed: int | None = None) -> torch.Tensor:
        if seed is None:
            return self._pipeline(image)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return self._pipeline(image)


def _rot(k: int) -> Callable[[torch.Tensor], torch.Tensor]:
    return lambda batch: torch.rot90(batch, k, dims=(-2, -1))


_VIEWS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "identity": lambda batch: batch,
    "hflip": lambda batch: torch.flip(batch, dims=(-1,)),
    "vflip": lambda batch: torch.flip(batch, dims=(-2,)),
    "rot90": _rot(1),
    "rot180": _rot(2),
    "rot270": _rot(3),
}

# Test-time augmentation views: the flips and 90-degree rotations, exact on square inputs.
TTA_VIEWS: tuple[str, ...] = tuple(_VIEWS)


def apply_tta_view(name: str, batch_nchw: torch.Tensor) -> torch.Tensor:
    """One TTA view of a batch [N, C, H, W] (any dtype, any device)."""
    try:
        return _VIEWS[name](batch_nchw)
    except KeyError:
        raise DataError(f"unknown TTA view {name!r}; expected one of {TTA_VIEWS}") from None
