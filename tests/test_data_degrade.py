"""Degradations for the robustness curves: documented parameters, monotone in severity, seeded."""

from __future__ import annotations

import colorsys

import numpy as np
import pytest
import torch

from mmfuse.data.augment import build_augmenter
from mmfuse.data.degrade import CORRUPTIONS, SEVERITIES, DegradedAugmenter, degrade


def _lesion_like(side: int = 96) -> np.ndarray:
    """A textured image: a dark blob on skin tone with fine stripes, so blur and JPEG have detail to lose."""
    y, x = np.mgrid[0:side, 0:side] / side
    blob = np.exp(-(((x - 0.5) ** 2 + (y - 0.5) ** 2) / 0.04))
    stripes = 0.5 + 0.5 * np.sin(2 * np.pi * 12 * x)
    image = np.stack([200 - 120 * blob, 160 - 110 * blob, 140 - 90 * blob], axis=-1) + 25 * stripes[..., None]
    return np.clip(image, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("corruption", list(CORRUPTIONS))
def test_each_corruption_gets_worse_with_severity_and_is_reproducible(corruption):
    image = _lesion_like()
    distances = []
    for severity in SEVERITIES:
        out = degrade(image, corruption, severity, seed=3)
        assert out.shape == image.shape and out.dtype == np.uint8
        assert np.array_equal(out, degrade(image, corruption, severity, seed=3))
        distances.append(np.abs(out.astype(float) - image).mean())
    assert distances[0] > 0
    assert all(a < b for a, b in zip(distances, distances[1:], strict=False)), distances


@pytest.mark.parametrize("corruption", ["gaussian_noise", "occlusion"])
def test_random_parts_follow_the_seed(corruption):
    image = _lesion_like()
    assert not np.array_equal(degrade(image, corruption, 3, seed=1), degrade(image, corruption, 3, seed=2))


def test_occlusion_covers_the_documented_area():
    image = np.full((100, 100, 3), 200, np.uint8)
    for severity, fraction in zip(SEVERITIES, CORRUPTIONS["occlusion"][1], strict=True):
        covered = (degrade(image, "occlusion", severity, seed=0) == 0).all(axis=-1).mean()
        assert covered == pytest.approx(fraction, abs=0.03)


def test_degraded_augmenter_is_an_augmenter_seeded_per_case():
    base = build_augmenter("auxiliary", train=False, img_size=32, mean=(0.5,) * 3, std=(0.5,) * 3)
    augmenter = DegradedAugmenter(base, "gaussian_noise", 4, seed=0)
    image = _lesion_like(40)
    out = augmenter(image, seed=11)
    assert out.shape == base(image).shape == (3, 32, 32) and out.dtype == torch.float32
    assert torch.equal(out, augmenter(image, seed=11))
    assert not torch.equal(out, augmenter(image, seed=12))
    assert not torch.equal(out, base(image, seed=11))


def test_unknown_names_and_severities_are_refused_with_the_choices():
    image = _lesion_like(16)
    with pytest.raises(ValueError, match="unknown corruption 'fog'.*gaussian_blur"):
        degrade(image, "fog", 1)
    with pytest.raises(ValueError, match=r"severity must be one of \[1, 2, 3, 4, 5\]"):
        degrade(image, "jpeg", 6)


def test_brightness_and_contrast_are_imagenet_cs():
    # ImageNet-C: brightness adds c to the HSV value (clipped), contrast pulls each channel to its mean.
    image = _lesion_like(24)
    for severity, shift in zip(SEVERITIES, (0.1, 0.2, 0.3, 0.4, 0.5), strict=True):
        expected = np.array(
            [
                colorsys.hsv_to_rgb(h, s, min(v + shift, 1.0))
                for h, s, v in (colorsys.rgb_to_hsv(*(p / 255)) for p in image.reshape(-1, 3))
            ]
        ).reshape(image.shape)
        got = degrade(image, "brightness", severity)
        assert np.abs(got.astype(float) - expected * 255).max() <= 0.5 + 1e-6
    for severity, factor in zip(SEVERITIES, (0.4, 0.3, 0.2, 0.1, 0.05), strict=True):
        x = image / 255
        expected = (x - x.mean(axis=(0, 1))) * factor + x.mean(axis=(0, 1))
        assert np.abs(degrade(image, "contrast", severity).astype(float) - expected * 255).max() <= 0.5 + 1e-6


def test_brightness_brightens_and_underexposure_darkens():
    image = _lesion_like()
    assert degrade(image, "brightness", 5).mean() > image.mean() + 40
    assert degrade(image, "underexposure", 5).mean() < image.mean() / 3


def test_corruptions_act_at_the_network_input_resolution():
    # Noise added to the 32 px input keeps its documented std; added to the 192 px image before the
    # resize, it would be averaged down about six-fold.
    base = build_augmenter("auxiliary", train=False, img_size=32, mean=(0.5,) * 3, std=(0.5,) * 3)
    image = np.full((192, 192, 3), 128, np.uint8)
    noisy = DegradedAugmenter(base, "gaussian_noise", 1, seed=0)(image, seed=0)
    std = float((noisy - base(image)).std()) * 0.5  # normalised with std 0.5: back to [0, 1] units
    assert std == pytest.approx(CORRUPTIONS["gaussian_noise"][1][0], rel=0.1)
    with pytest.raises(ValueError, match="network's input resolution"):
        DegradedAugmenter(lambda image, seed=None: image, "jpeg", 1)
