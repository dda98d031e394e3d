"""Image degradations for robustness curves: what a poor clinical photo (or dermoscopy) looks like.

Seven corruptions at five severities each. As in ImageNet-C (Hendrycks & Dietterich, ICLR 2019), they act
on the image at the network's input resolution: :class:`DegradedAugmenter` wraps the evaluation transform,
resizes the decoded image to the model's input size (its :meth:`~mmfuse.data.transforms.ImageTransform.pixels`),
degrades those uint8 pixels, then normalises. Each corruption has *fixed* parameters; what is random (the
noise, the occluder's position) is seeded by the case, so two evaluations see identical degraded images.

=================== ===================================================== =====================================
corruption          parameter at severity 1 … 5                           against ImageNet-C
=================== ===================================================== =====================================
gaussian_blur       sigma 1, 2, 3, 4, 6 px at 224 px (scaled to the       ``gaussian_blur``: the same sigmas
                    input side)                                           (at 224 px)
gaussian_noise      std 0.08, 0.12, 0.18, 0.26, 0.38 of full intensity    ``gaussian_noise``: the same
jpeg                quality 25, 18, 15, 10, 7                             ``jpeg_compression``: the same
brightness          HSV value + 0.1, 0.2, 0.3, 0.4, 0.5 (clipped to 1)    ``brightness``: the same
contrast            (v − channel mean) · 0.4, 0.3, 0.2, 0.1, 0.05 + mean  ``contrast``: the same
underexposure       v -> (1 + c) v + 255 b with (b, c) = (−.01, −.15),     ours (none in ImageNet-C): a dark,
                    (−.02, −.3), (−.03, −.45), (−.045, −.6), (−.06, −.75)  flat photo (mean 144 -> 120 … 21)
occlusion           a black square covering 10, 20, 30, 40, 50 % of the   ours (none in ImageNet-C): a finger,
                    image at a random position                            ruler, hair or label
=================== ===================================================== =====================================

ImageNet-C's ``brightness`` brightens (skimage's RGB → HSV, value + c, back); raising the HSV value (the
channel maximum) scales the pixel by ``min(V + c, 1) / V``, which is how it is computed here, without
skimage. ``underexposure`` (named ``brightness_contrast`` before) darkens and flattens instead.
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
    "underexposure": (
        "brightness_contrast",
        ((-0.01, -0.15), (-0.02, -0.3), (-0.03, -0.45), (-0.045, -0.6), (-0.06, -0.75)),
    ),
    "occlusion": ("area_fraction", (0.1, 0.2, 0.3, 0.4, 0.5)),
    # ImageNet-C's own constants. Appended, so the seeds of the corruptions above do not change.
    "brightness": ("hsv_value_shift", (0.1, 0.2, 0.3, 0.4, 0.5)),
    "contrast": ("contrast_factor", (0.4, 0.3, 0.2, 0.1, 0.05)),
}


def severity_value(corruption: str, severity: int):
    """The parameter of ``corruption`` at ``severity`` (1–5); the error lists the valid names."""
    if corruption not in CORRUPTIONS:
        raise DataError(f"unknown corruption {corruption!r}; available: {list(CORRUPTIONS)}")
    if severity not in SEVERITIES:
        raise DataError(f"severity must be one of {list(SEVERITIES)}, got {severity!r}")
    return CORRUPTIONS[corruption][1][severity - 1]


def _brightness(image: np.ndarray, shift: float) -> np.ndarray:
    """ImageNet-C's ``brightness``: HSV value + ``shift``, clipped; hue and saturation kept."""
    x = image.astype(np.float64) / 255
    value = x.max(axis=-1, keepdims=True)
    raised = np.minimum(value + shift, 1.0)
    # Same hue and saturation at a new value: the pixel scales by raised / value (black turns grey).
    out = np.where(value > 0, x * raised / np.where(value > 0, value, 1), raised)
    return np.clip(np.rint(out * 255), 0, 255).astype(np.uint8)


def _contrast(image: np.ndarray, factor: float) -> np.ndarray:
    """ImageNet-C's ``contrast``: each channel pulled towards its mean by ``factor``."""
    x = image.astype(np.float64) / 255
    mean = x.mean(axis=(0, 1), keepdims=True)
    return np.clip(np.rint(((x - mean) * factor + mean) * 255), 0, 255).astype(np.uint8)


# ImageNet-C's colour corruptions: deterministic functions of the pixels.
PIXEL_FUNCTIONS = {"brightness": _brightness, "contrast": _contrast}


def _albumentations_transform(corruption: str, severity: int, side: int):
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
    if corruption == "underexposure":
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
    if corruption in PIXEL_FUNCTIONS:
        return PIXEL_FUNCTIONS[corruption](image, severity_value(corruption, severity))
    transform = _albumentations_transform(corruption, severity, image.shape[0])
    transform.set_random_seed(sample_seed(seed, severity, list(CORRUPTIONS).index(corruption)))
    return transform(image=np.ascontiguousarray(image))["image"]


class DegradedAugmenter:
    """An :class:`~mmfuse.data.augment.Augmenter`: resize to the input size, degrade, normalise.

    ``base`` is the evaluation transform (:class:`~mmfuse.data.transforms.ImageTransform`, what
    ``build_augmenter(train=False)`` returns): the corruption acts on its resized pixels, at the network's
    resolution as in ImageNet-C. ``seed`` mixes with the per-case seed the dataset passes, so each case is
    degraded its own way and every evaluation degrades it the same way.
    """

    def __init__(self, base: Augmenter, corruption: str, severity: int, seed: int = 0) -> None:
        severity_value(corruption, severity)  # validate early
        if not (callable(getattr(base, "pixels", None)) and callable(getattr(base, "normalize", None))):
            raise DataError(
                "corruptions act at the network's input resolution: wrap the evaluation transform "
                f"(build_augmenter(train=False), with pixels() and normalize()), not {type(base).__name__}"
            )
        self.base, self.corruption, self.severity, self.seed = base, corruption, int(severity), int(seed)

    def __call__(self, image: np.ndarray, seed: int | None = None) -> torch.Tensor:
        case_seed = sample_seed(self.seed, 0, 0 if seed is None else seed)
        pixels = self.base.pixels(image)
        return self.base.normalize(degrade(pixels, self.corruption, self.severity, case_seed))
