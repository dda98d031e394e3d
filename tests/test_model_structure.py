"""The model's state dict is a file format: saved weights load only while its keys, order and shapes stay put.

Pinned on timm's tiny test backbones, built the way every preset builds (encoders, fusion blocks, metadata
encoder, combiner, heads). A refactor of the constructor must leave all of it untouched; a change here means
every saved model.safetensors no longer loads.
"""

from __future__ import annotations

import hashlib

import pytest
import torch

import mmfuse
from mmfuse.tasks import resolve_tasks

TINY = {"primary": "test_convnext", "auxiliary": "test_efficientnet", "img_size": 64}
DERM7PT = resolve_tasks("derm7pt")


def _keys(model) -> list[str]:
    return [f"{name} {tuple(value.shape)}" for name, value in model.state_dict().items()]


def _groups(keys: list[str]) -> list[str]:
    """The top-level submodules in state-dict order, each named once."""
    return list(dict.fromkeys(k.split(".", 1)[0] for k in keys))


def _head_keys(head: str, in_features: int) -> list[str]:
    return [
        f"heads.{head}.classifiers.{t.name}.{p} {shape}"
        for t in DERM7PT
        for p, shape in (("weight", (t.num_classes, in_features)), ("bias", (t.num_classes,)))
    ]


def test_the_paper_models_own_keys_are_exactly_these():
    model = mmfuse.build_model("ammfm-swin", **TINY)
    keys = _keys(model)
    fusion = [
        f"fusion_blocks.{stage}.{conv}.{p} {shape}"
        for stage, channels in ((0, 24), (1, 32), (2, 48))
        for conv in ("key", "query", "value")
        for p, shape in (("weight", (channels, channels, 1, 1)), ("bias", (channels,)))
    ]
    heads = _head_keys("primary", 64) + _head_keys("auxiliary", 64) + _head_keys("fusion", 128)
    encoders = [k for k in keys if k.startswith(("primary_encoder.", "auxiliary_encoder."))]
    assert keys == encoders + fusion + heads
    assert _groups(keys) == ["primary_encoder", "auxiliary_encoder", "fusion_blocks", "heads"]
    assert (len(keys), sum(p.numel() for p in model.parameters())) == (243, 307540)
    # head weights live in config.json only
    assert "head_weights" not in model.state_dict()


# (preset, overrides) -> (top-level groups in order, number of keys, parameters, digest of "key shape" lines)
CASES = {
    "ammfm-swin": (
        {},
        ["primary_encoder", "auxiliary_encoder", "fusion_blocks", "heads"],
        243,
        307540,
        "36a2e7cf9d1bc747",
    ),
    "bab-every-stage": (
        {"fusion": "bab", "fusion_stages": "all"},
        ["primary_encoder", "auxiliary_encoder", "fusion_blocks", "heads"],
        273,
        344524,
        "04c046f6a4fca49d",
    ),
    "primary-only": (
        {"modalities": ["primary"]},
        ["primary_encoder", "heads"],
        113,
        208560,
        "bf1bc306839e789b",
    ),
    "auxiliary-only": (
        {"modalities": ["auxiliary"]},
        ["auxiliary_encoder", "heads"],
        96,
        83860,
        "c59166833c9879ed",
    ),
}
TFORMER = {
    "primary": "test_convnext",
    "auxiliary": "test_convnext",
    "img_size": 64,
    "fusion_stages": [1, 2, 3],
    "fusion_stage_options": {"1": {"num_heads": 2}, "2": {"num_heads": 2}, "3": {"depth": 2, "num_heads": 4}},
    "combiner_options": {"dim": 8, "num_heads": 2},
    "metadata_encoder_options": {"hidden": 8, "out_features": 8},
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_state_dict_keys_order_and_shapes_are_pinned(case):
    overrides, groups, count, params, digest = CASES[case]
    model = mmfuse.build_model("ammfm-swin", **TINY, **overrides)
    keys = _keys(model)
    assert _groups(keys) == groups
    assert (len(keys), sum(p.numel() for p in model.parameters())) == (count, params)
    assert hashlib.sha256("\n".join(keys).encode()).hexdigest()[:16] == digest, "\n".join(keys)


def test_a_shared_encoder_stream_and_metadata_model_keeps_its_order():
    # TFormer: one encoder for both images, stream fusion blocks, a metadata encoder, an attention combiner.
    model = mmfuse.build_model("tformer", **TFORMER)
    keys = _keys(model)
    assert _groups(keys) == ["primary_encoder", "fusion_blocks", "metadata_encoder", "combiner", "heads"]
    assert (len(keys), sum(p.numel() for p in model.parameters())) == (313, 537888)
    assert hashlib.sha256("\n".join(keys).encode()).hexdigest()[:16] == "da034f763c22aa34", "\n".join(keys)


def test_the_same_seed_builds_the_same_weights():
    # Components are created in a fixed order, so the random initialisation is reproducible.
    first, second = (
        (torch.manual_seed(0), mmfuse.build_model("ammfm-swin", **TINY))[1].state_dict() for _ in range(2)
    )
    assert all(torch.equal(first[k], second[k]) for k in first)
