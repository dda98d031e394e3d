"""Paper names build the paper's model; the fast variants, old configs and single-modality models."""

from __future__ import annotations

import json

import pytest
import torch

import mmfuse
from mmfuse.fusion_stages import default_fusion_stages
from mmfuse.hub import CONFIG_FILE
from mmfuse.presets import resolve_config, upgrade_config


def test_default_fusion_stages_are_the_first_three_primary_stages():
    assert default_fusion_stages([4, 8, 16, 32]) == [0, 1, 2]  # Swin-T, ConvNeXt-T
    assert default_fusion_stages([2, 4, 8, 16, 32]) == [1, 2, 3]  # ResNet-50 / MobileNetV3: stem excluded


@pytest.mark.parametrize(
    ("name", "stages", "exact"),
    [
        ("ammfm-swin", [0, 1, 2], True),
        ("ammfm-resnet", [1, 2, 3], True),
        ("ammfm-convnext", [0, 1, 2], True),
        ("ammfm-swin-fast", [2], False),
        ("ammfm-resnet-fast", [3], False),
        ("ammfm-convnext-fast", [2], False),
    ],
)
def test_paper_names_fuse_three_stages_exactly_and_fast_names_one_pooled(name, stages, exact):
    config = resolve_config(name)
    assert config["fusion_stages"] == stages
    assert config["fusion"] == "aab"
    assert config["fusion_options"].get("max_key_tokens") == (None if exact else 196)


def test_paper_model_matches_auxiliary_stages_by_reduction():
    model = mmfuse.build_model("ammfm-swin")  # Swin-T 4/8/16 with MobileNetV3 2/4/8/16/32
    assert model.fusion_pairs == {0: 1, 1: 2, 2: 3}
    block = model.fusion_blocks["0"]
    assert block.attention.kwargs["max_key_tokens"] is None and block.attention.kwargs["key_pool"] == 1
    assert mmfuse.build_model().config == model.config  # the library default is the paper's model


def test_a_config_json_saved_before_exact_attention_loads_with_pooled_keys(tiny_model_kwargs, tmp_path):
    # Version 1 configs (no config_version) meant keys pooled to 196 positions by default.
    torch.manual_seed(0)
    trained = mmfuse.build_model(
        "ammfm-swin", fusion_stages=[0], fusion_options={"max_key_tokens": 196}, **tiny_model_kwargs
    )
    directory = trained.save_pretrained(tmp_path / "old")
    config = json.loads((directory / CONFIG_FILE).read_text())
    for field in ("config_version", "modalities"):
        del config[field]
    config["fusion_options"] = {}
    (directory / CONFIG_FILE).write_text(json.dumps(config))
    loaded = mmfuse.from_pretrained(directory)
    assert loaded.fusion_blocks["0"].attention.kwargs["max_key_tokens"] == 196
    assert loaded.config["config_version"] == 2 and loaded.config["fusion_options"] == {"max_key_tokens": 196}
    images = torch.randn(2, 3, 64, 64), torch.randn(2, 3, 64, 64)
    for task, p in trained.predict(*images).items():
        torch.testing.assert_close(loaded.predict(*images)[task], p)
    # The same file read as a current config would build exact attention: different predictions.
    from mmfuse.hub import METADATA_KEYS

    fields = {k: v for k, v in config.items() if k not in METADATA_KEYS}
    current = mmfuse.FusionModel({**fields, "config_version": 2})
    current.load_state_dict(trained.state_dict())
    assert not torch.allclose(current.predict(*images)["DIAG"], trained.predict(*images)["DIAG"], atol=1e-6)


def test_upgrade_keeps_explicit_options_and_refuses_future_versions():
    assert upgrade_config({"fusion": "aab", "fusion_options": {"max_key_tokens": None}})[
        "fusion_options"
    ] == {"max_key_tokens": None}
    assert "max_key_tokens" not in upgrade_config({"fusion": "concat"}).get("fusion_options", {})
    with pytest.raises(ValueError, match="config_version 9 is newer"):
        upgrade_config({"config_version": 9})


@pytest.mark.parametrize("branch", ["primary", "auxiliary"])
def test_single_modality_models_have_one_encoder_and_one_head(branch, tiny_model_kwargs, tmp_path):
    model = mmfuse.build_model("ammfm-swin", modalities=[branch], **tiny_model_kwargs)
    other = "auxiliary" if branch == "primary" else "primary"
    encoder = model.primary_encoder if branch == "primary" else model.auxiliary_encoder
    assert set(model.heads) == {branch} and not model.fusion_blocks and model.combiner is None
    own = sum(p.numel() for p in encoder.parameters()) + sum(p.numel() for p in model.heads.parameters())
    assert sum(p.numel() for p in model.parameters()) == own
    image = torch.randn(2, 3, 64, 64)
    out = model(**{branch: image, other: torch.randn(2, 3, 64, 64)})  # the other image is ignored
    assert set(out.logits) == {branch}
    probabilities = model.predict(**{branch: image})
    expected = {t: v.softmax(-1) for t, v in model.eval()(**{branch: image}).logits[branch].items()}
    for task, p in probabilities.items():
        torch.testing.assert_close(p, expected[task])
    loaded = mmfuse.from_pretrained(model.save_pretrained(tmp_path / branch))
    assert loaded.config["modalities"] == [branch]
    for task, p in loaded.predict(**{branch: image}).items():
        torch.testing.assert_close(p, probabilities[task])
    with pytest.raises(ValueError, match=f"sees only the {branch} image"):
        model(**{other: image})


def test_bad_modalities_are_explained(tiny_model_kwargs):
    with pytest.raises(ValueError, match="modalities must be"):
        mmfuse.build_model(modalities=["dermoscopy"], **tiny_model_kwargs)
    with pytest.raises(ValueError, match="share_encoder needs both modalities"):
        mmfuse.build_model(
            modalities=["primary"],
            share_encoder=True,
            auxiliary=tiny_model_kwargs["primary"],
            primary=tiny_model_kwargs["primary"],
            img_size=64,
        )


@pytest.mark.slow
def test_a_single_modality_run_trains_evaluates_and_saves(tmp_path):
    from test_training_fixtures import make_release, tiny_config

    from mmfuse.pipeline import train

    release = make_release(tmp_path / "data", cases=24, size=36)
    config = tiny_config(
        release, model={"modalities": ["auxiliary"]}, evaluation={"tta": ["identity", "hflip"]}
    )
    config["train"].update(epochs=1, swa={"epochs": 0, "anneal_epochs": 1, "lr": None})
    result = train(config, tmp_path / "run", progress=False)
    assert set(result.metrics["test"]) == {"auxiliary", "final"}
    assert result.metrics["test"]["final"]["avg_auc"] == result.metrics["test"]["auxiliary"]["avg_auc"]
    search = json.loads((tmp_path / "run" / "weight_search.json").read_text())
    assert "single-modality" in search["skipped"]
    loaded = mmfuse.from_pretrained(tmp_path / "run" / "model")
    assert loaded.config["modalities"] == ["auxiliary"] and set(loaded.heads) == {"auxiliary"}
