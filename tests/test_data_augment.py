"""The augmentation interface: both backends, the batch augmenter and the TTA views."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from mmfuse.data.augment import TTA_VIEWS, BatchAugmenter, apply_tta_view, build_augmenter

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def image(seed=0, side=40):
    return np.random.default_rng(seed).integers(0, 256, (side, side + 4, 3), dtype=np.uint8)


@pytest.mark.parametrize("backend", ["albumentations", "torchvision"])
def test_eval_pipeline_resizes_and_normalises(backend):
    flat = np.full((50, 60, 3), 255, np.uint8)
    out = build_augmenter("primary", train=False, img_size=24, mean=MEAN, std=STD, backend=backend)(flat)
    assert out.shape == (3, 24, 24) and out.dtype == torch.float32
    expected = (1 - torch.tensor(MEAN)) / torch.tensor(STD)
    assert torch.allclose(out[:, 5, 5], expected, atol=1e-4)


@pytest.mark.parametrize("backend", ["albumentations", "torchvision"])
def test_train_pipeline_is_seeded_and_varies(backend):
    aug = build_augmenter("auxiliary", train=True, img_size=24, mean=MEAN, std=STD, backend=backend)
    outs = [aug(image(), seed=s) for s in range(8)]
    assert all(o.shape == (3, 24, 24) for o in outs)
    assert torch.equal(outs[0], aug(image(), seed=0))
    assert len({o.numpy().tobytes() for o in outs}) > 5


def test_albumentations_flips_are_drawn_independently():
    aug = build_augmenter("primary", train=True, img_size=8, mean=MEAN, std=STD, p_affine=0, p_brightness=0)
    img = np.zeros((8, 8, 3), np.uint8)
    img[0, 0] = 255  # a marker in one corner shows which flips ran
    corners = {tuple((aug(img, seed=s)[0] > 0).nonzero()[0].tolist()) for s in range(40)}
    assert corners == {(0, 0), (0, 7), (7, 0), (7, 7)}


def test_unknown_options_backends_and_modalities_are_refused():
    with pytest.raises(ValueError, match="rotation"):
        build_augmenter("primary", train=True, img_size=8, mean=MEAN, std=STD, rotation=10)
    with pytest.raises(ValueError, match="backend"):
        build_augmenter("primary", train=True, img_size=8, mean=MEAN, std=STD, backend="kornia")
    with pytest.raises(ValueError, match="modality"):
        build_augmenter("thermal", train=True, img_size=8, mean=MEAN, std=STD)


def test_batch_augmenter_replays_from_its_generator_and_accepts_nhwc():
    batch = torch.from_numpy(np.stack([image(i, 36)[:, :36] for i in range(4)]))  # NHWC uint8
    aug = BatchAugmenter(train=True, img_size=20, mean=MEAN, std=STD)
    first = aug(batch, torch.Generator().manual_seed(1))
    assert first.shape == (4, 3, 20, 20) and first.dtype == torch.float32
    assert torch.equal(first, aug(batch.permute(0, 3, 1, 2), torch.Generator().manual_seed(1)))
    assert not torch.equal(first, aug(batch, torch.Generator().manual_seed(2)))


def test_batch_augmenter_identity_parameters_are_a_plain_resize():
    batch = torch.from_numpy(np.stack([image(i, 16)[:, :16] for i in range(2)])).permute(0, 3, 1, 2)
    aug = BatchAugmenter(
        train=True, img_size=16, mean=(0, 0, 0), std=(1, 1, 1), hflip=1, vflip=0, p_affine=0, p_brightness=0
    )
    flipped = aug(batch, torch.Generator().manual_seed(0))
    assert torch.allclose(flipped, batch.flip(-1).float() / 255, atol=1e-5)
    plain = BatchAugmenter(train=False, img_size=16, mean=(0, 0, 0), std=(1, 1, 1))(batch)
    assert torch.allclose(plain, batch.float() / 255)


def test_tta_views_are_exact_and_invertible():
    batch = torch.arange(2 * 3 * 4 * 4).view(2, 3, 4, 4)
    assert TTA_VIEWS == ("identity", "hflip", "vflip", "rot90", "rot180", "rot270")
    views = {name: apply_tta_view(name, batch) for name in TTA_VIEWS}
    assert len({v.flatten().tolist().__repr__() for v in views.values()}) == 6
    assert torch.equal(apply_tta_view("rot270", views["rot90"]), batch)
    assert torch.equal(apply_tta_view("hflip", views["hflip"]), batch)
    with pytest.raises(ValueError, match="identity"):
        apply_tta_view("transpose", batch)


def test_model_code_never_imports_albumentations():
    code = "import sys, mmfuse, mmfuse.data; mmfuse.build_model; print('albumentations' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
