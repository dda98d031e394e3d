"""The richer plugin contracts, exercised from the installed third-party package (examples/plugin_package):
a stream fusion block, a metadata encoder, a combiner, a head and a preset, all provided by "example"."""

from __future__ import annotations

import json

import pytest
import torch

import mmfuse
import mmfuse.registry
from mmfuse.metadata import MetadataEncoding
from mmfuse.registry import COMBINERS, FUSIONS, METADATA_ENCODERS, PRESETS, REGISTRIES

pytest.importorskip(
    "mmfuse_example_plugin", reason="the example plugin (examples/plugin_package) is not installed"
)

ENCODING = MetadataEncoding.fit([{"sex": "female"}, {"sex": "male"}], ["sex"])


def test_every_new_contract_arrives_through_the_entry_point():
    for registry, name in (
        (FUSIONS, "pooled_stream"),
        (METADATA_ENCODERS, "linear_tanh"),
        (COMBINERS, "metadata_gate"),
        (REGISTRIES["head"], "cosine"),
        (PRESETS, "example-stream"),
    ):
        assert registry.entry(name).provider == "example", name
    assert "cosine" in mmfuse.registry.list_heads() and "metadata_gate" in mmfuse.registry.list_combiners()
    assert "linear_tanh" in mmfuse.registry.list_metadata_encoders()


def test_third_party_preset_builds_trains_and_reloads(tmp_path):
    from mmfuse_example_plugin import CosineHead, MetadataGate, PooledStream

    model = mmfuse.build_model("example-stream", metadata=ENCODING, img_size=32)
    assert model.auxiliary_encoder is model.primary_encoder
    assert all(isinstance(b, PooledStream) for b in model.fusion_blocks.values())
    assert isinstance(model.combiner, MetadataGate) and isinstance(model.heads["fusion"], CosineHead)
    # The fusion head reads the stream (primary width of the last fused stage), not the encoders' maps.
    assert (
        model.combiner.primary_features
        == model.fusion_blocks[str(max(model.fusion_pairs))].out_stream_channels[0]
    )
    images = torch.randn(2, 3, 32, 32), torch.randn(2, 3, 32, 32)
    metadata = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    out = model(primary=images[0], auxiliary=images[1], metadata=metadata)
    sum(v.sum() for d in out.logits.values() for v in d.values()).backward()
    assert model.combiner.gate.weight.grad is not None
    assert next(iter(model.fusion_blocks.values())).primary_in.weight.grad is not None
    model.eval().save_pretrained(tmp_path / "m")
    providers = json.loads((tmp_path / "m" / "config.json").read_text())["providers"]
    assert {providers[f]["plugin"] for f in ("fusion", "combiner", "head", "metadata_encoder")} == {"example"}
    loaded = mmfuse.from_pretrained(tmp_path / "m")
    a = model.predict(primary=images[0], auxiliary=images[1], metadata=metadata)
    b = loaded.predict(primary=images[0], auxiliary=images[1], metadata=metadata)
    assert all(torch.allclose(a[t], b[t], atol=1e-6) for t in a)


def test_simple_fusion_block_contract_still_works(tiny_model_kwargs, image_pair):
    model = mmfuse.build_model("ammfm-swin", **{**tiny_model_kwargs, "fusion": "gated"})
    assert set(model(primary=image_pair[0], auxiliary=image_pair[1]).logits) == {
        "primary",
        "auxiliary",
        "fusion",
    }
