"""Shared fixtures: tiny backbones so model tests run in milliseconds on a CPU."""

from __future__ import annotations

import os

import pytest
import torch
from hypothesis import settings

# Wall-clock deadlines make property tests flaky on a loaded 2-core CI machine; speed is the benchmarks' job.
settings.register_profile("mmfuse", deadline=None)
settings.load_profile("mmfuse")

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# The trainer picks its thread count from the load unless told; tests pin it (bit-exact resume needs it fixed).
os.environ.setdefault("OMP_NUM_THREADS", "1")

# timm's tiny test models: NCHW CNNs and a channels-last (NHWC) MambaOut.
TINY_PRIMARY = "test_convnext"
TINY_AUXILIARY = "test_efficientnet"
TINY_NHWC = "test_mambaout"
TINY_IMG = 64


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny models gain nothing from threads, and on a busy 2-core machine they lose a lot to them."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def tiny_model_kwargs() -> dict:
    """Overrides that turn any preset into a model small enough for unit tests."""
    return {"primary": TINY_PRIMARY, "auxiliary": TINY_AUXILIARY, "img_size": TINY_IMG}


@pytest.fixture
def image_pair() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return (
        torch.randn(2, 3, TINY_IMG, TINY_IMG, generator=generator),
        torch.randn(2, 3, TINY_IMG, TINY_IMG, generator=generator),
    )
