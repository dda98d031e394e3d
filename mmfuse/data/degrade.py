"""Image degradations for robustness curves: what a poor clinical photo (or dermoscopy) looks like.

Five corruptions at five severities each, with the parameters of ImageNet-C (Hendrycks & Dietterich,
ICLR 2019) where it has them. Each is an albumentations transform with *fixed* parameters, applied to the
uint8 image before the evaluation pipeline (resize, normalise), through the project's augmentation
interface: :class:`DegradedAugmenter` is an :class:`~mmfuse.data.augment.Augmenter` wrapping the
evaluation augmenter. What is random (the noise, the occluder's position) is seeded by the case, so two
evaluations see identical degraded images.

=================== ==================================================== =====================================
corruption          parameter at severity 1 … 5                          meaning
=================== ==================================================== =====================================
gaussian_blur       sigma 1, 2, 3, 4, 6 px at 224 px (scaled to the      out of focus
                    image's side)
gaussian_noise      std 0.08, 0.12, 0.18, 0.26, 0.38 of full intensity   sensor noise in poor light
jpeg                quality 25, 18, 15, 10, 7                            heavy compression (messaging apps)
brightness_contrast v -> (1 + c) v + 255 b with (b, c) = (−.01, −.15),    under-exposed, flat image (mean
                    (−.02, −.3), (−.03, −.45), (−.045, −.6), (−.06, −.75) intensity 144 -> 120, 96, 71, 46, 21)
occlusion           a black square covering 10, 20, 30, 40, 50 % of the  a finger, ruler, hair or label
                    image at a random position
=================== ==================================================== =====================================
"""

from __future__ import annotations

import math

import numpy as np
import torch

from mmfuse.data.augment import Augmenter, sample_seed
from mmfuse.errors import DataError

SEVERITIES = (1, 2, 3, 4, 5)
REFERENCE_SIDE = 224

# corruption -> (parameter name, the value at each severity)
CORRUPTIONS: dict[str, tuple[str, tuple]] = {
    "gaussian_blur": ("sigma_px_at_224", (1.0, 2.0, 3.0, 4.0, 6.0)),
    "gaussian_noise": ("std", (0.08, 0.12, 0.18, 0.26, 0.38)),
    "jpeg": ("quality", (25, 18, 15, 10, 7)),
    # (brightness shift, contrast change): the pixel value v becomes (1 + contrast) * v + brightness * 255.
    "brightness_contrast": (
        "brightness_contrast",
        ((-0.01, -0.15), (-0.02, -0.3), (-0.03, -0.45), (-0.045, -0.6), (-0.06, -0.75)),
    ),
    "occlusion": ("area_fraction", (0.1, 0.2, 0.3, 0.4, 0.5)),
}


def severity_value(corruption: str, severity: int):
    """The parameter of ``corruption`` at ``severity`` (1–5); the error lists the valid names."""
    if corruption not in CORRUPTIONS:
        raise DataError(f"unknown corruption {corruption!r}; available: {list(CORRUPTIONS)}")
    if severity not in SEVERITIES:
        raise DataError(f"severity must be one of {list(SEVERITIES)}, got {severity!r}")
    return CORRUPTIONS[corruption][1][severity - 1]


def degradation_transform(corruption: str, severity: int, side: int):
    """The albumentations transform (applied with probability 1) for an image of ``side`` pixels."""
    import albumentations as A  # noqa: N812 - the library's own convention

    value = severity_value(corruption, severity)
    if corruption == "gaussian_blur":
        sigma = value * side / REFERENCE_SIDE
        return A.GaussianBlur(blur_limit=0, sigma_limit=(sigma, sigma), p=1.0)
    if corruption == "gaussian_noise":
        return A.GaussNoise(std_range=(value, value), mean_range=(0.0, 0.0), per_channel=True, p=1.0)
    if corruption == "jpeg":
        return A.ImageCompression(compression_type="jpeg", quality_range=(int(value), int(value)), p=1.0)
    if corruption == "brightness_contrast":
        brightness, contrast = value
        return A.RandomBrightnessContrast(
            brightness_limit=(brightness, brightness), contrast_limit=(contrast, contrast), p=1.0
        )
    fraction = math.sqrt(value)  # occlusion: a square of the given area
    return A.CoarseDropout(
        num_holes_range=(1, 1),
        hole_height_range=(fraction, fraction),
        hole_width_range=(fraction, fraction),
        fill=0,
        p=1.0,
    )


def degrade(image: np.ndarray, corruption: str, severity: int, seed: int = 0) -> np.ndarray:
    """``image`` (uint8 HWC) degraded; the same ``seed`` gives the same pixels."""
    transform = degradation_transform(corruption, severity, image.shape[0])
    transform.set_random_seed(sample_seed(seed, severity, list(CORRUPTIONS).index(corruption)))
    return transform(image=np.ascontiguousarray(image))["image"]


class DegradedAugmenter:
    """An :class:`~mmfuse.data.augment.Augmenter`: degrade the image, then run the wrapped pipeline.

    ``seed`` mixes with the per-case seed the dataset passes, so each case is degraded its own way and
    every evaluation degrades it the same way.
    """

    def __init__(self, base: Augmenter, corruption: str, severity: int, seed: int = 0) -> None:
        severity_value(corruption, severity)  # validate early
        self.base, self.corruption, self.severity, self.seed = base, corruption, int(severity), int(seed)

    def __call__(self, image: np.ndarray, seed: int | None = None) -> torch.Tensor:
        case_seed = sample_seed(self.seed, 0, 0 if seed is None else seed)
        return self.base(degrade(image, self.corruption, self.severity, case_seed), seed=seed)
