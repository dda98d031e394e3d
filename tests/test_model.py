"""The fusion model: shapes, heads, Eq. 4, missing modalities, and config round trips."""

from __future__ import annotations

import itertools
import json

import pytest
import torch

import mmfuse
import mmfuse.registry

ENCODERS = ["test_convnext", "test_efficientnet", "test_mambaout", "tiny_cnn"]
FUSIONS = ["aab", "bab", "concat", "gated"]


@pytest.mark.parametrize(("primary", "auxiliary"), list(itertools.permutations(ENCODERS, 2)))
@pytest.mark.parametrize("fusion", FUSIONS)
def test_every_encoder_pair_and_fusion_gives_per_head_per_task_logits(primary, auxiliary, fusion):
    model = mmfuse.build_model(
        primary=primary, auxiliary=auxiliary, fusion=fusion, fusion_stages="all", img_size=32
    )
    out = model(primary=torch.randn(2, 3, 32, 32), auxiliary=torch.randn(2, 3, 32, 32))
    assert set(out.logits) == set(mmfuse.HEADS)
    for head in mmfuse.HEADS:
        assert {t: v.shape for t, v in out.logits[head].items()} == {
            t.name: (2, t.num_classes) for t in model.tasks
        }


def test_nhwc_timm_encoders_return_nchw_stages():
    encoder = mmfuse.registry.create_encoder("test_mambaout", img_size=64)
    features = encoder(torch.randn(1, 3, 64, 64))
    assert [f.shape[1] for f in features] == encoder.channels
    assert [64 // f.shape[-1] for f in features] == encoder.reductions


def test_fusion_refines_the_primary_branch_only_through_attention(tiny_model_kwargs, image_pair):
    primary, auxiliary = image_pair
    other_auxiliary = torch.randn_like(auxiliary)
    for fusion, primary_depends_on_auxiliary in (("aab", True), ("concat", False)):
        torch.manual_seed(0)
        model = mmfuse.build_model(fusion=fusion, fusion_stages=[0, 1], **tiny_model_kwargs).eval()
        a = model(primary=primary, auxiliary=auxiliary).logits["primary"]["DIAG"]
        b = model(primary=primary, auxiliary=other_auxiliary).logits["primary"]["DIAG"]
        assert (not torch.allclose(a, b)) == primary_depends_on_auxiliary, fusion


def test_predict_is_eq4_with_stored_head_weights(tiny_model_kwargs, image_pair):
    model = mmfuse.build_model(**tiny_model_kwargs).eval()
    assert model.head_weights_dict == pytest.approx({"primary": 1 / 3, "auxiliary": 1 / 3, "fusion": 1 / 3})
    model.set_head_weights({"primary": 0.5, "auxiliary": 0.2, "fusion": 0.3})
    logits = model(primary=image_pair[0], auxiliary=image_pair[1]).logits
    predicted = model.predict(primary=image_pair[0], auxiliary=image_pair[1])
    for task in model.tasks:
        expected = sum(w * logits[h][task.name].softmax(-1) for h, w in model.head_weights_dict.items())
        torch.testing.assert_close(predicted[task.name], expected)
        torch.testing.assert_close(predicted[task.name].sum(-1), torch.ones(2))


def test_missing_modalities_use_the_remaining_head(tiny_model_kwargs, image_pair):
    model = mmfuse.build_model(**tiny_model_kwargs).eval()
    primary, auxiliary = image_pair
    with torch.no_grad():
        primary_only = model.heads["primary"](model.primary_encoder(primary)[-1].mean((2, 3)))
        auxiliary_only = model.heads["auxiliary"](model.auxiliary_encoder(auxiliary)[-1].mean((2, 3)))
    for task in model.tasks:
        torch.testing.assert_close(
            model.predict(primary=primary)[task.name], primary_only[task.name].softmax(-1)
        )
        torch.testing.assert_close(
            model.predict(auxiliary=auxiliary)[task.name], auxiliary_only[task.name].softmax(-1)
        )
    with pytest.raises(ValueError, match="at least one of primary and auxiliary"):
        model()


def test_rows_without_auxiliary_take_the_primary_head(tiny_model_kwargs, image_pair):
    model = mmfuse.build_model(**tiny_model_kwargs).eval()
    primary, auxiliary = image_pair
    present = torch.tensor([True, False])
    mixed = model.predict(primary=primary, auxiliary=auxiliary, auxiliary_present=present)
    fused = model.predict(primary=primary, auxiliary=auxiliary)
    alone = model.predict(primary=primary[1:])
    torch.testing.assert_close(mixed["DIAG"][0], fused["DIAG"][0])
    torch.testing.assert_close(mixed["DIAG"][1:], alone["DIAG"], atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("weights", [(0.5, 0.5, 0.5), (-0.1, 0.6, 0.5), (1.0, 0.0)])
def test_head_weights_must_lie_on_the_simplex(tiny_model_kwargs, weights):
    model = mmfuse.build_model(**tiny_model_kwargs)
    with pytest.raises(ValueError, match="head weights"):
        model.set_head_weights(weights)


def test_config_is_plain_data_and_rebuilds_the_same_architecture(tiny_model_kwargs, image_pair):
    model = mmfuse.build_model("ammfm-swin", fusion="bab", fusion_stages=[1, -1], **tiny_model_kwargs)
    model.set_head_weights((0.2, 0.3, 0.5))
    config = json.loads(json.dumps(model.config))
    assert config["fusion_stages"] == [1, 3] and config["preset"] == "ammfm-swin"
    rebuilt = mmfuse.build_model(config)
    assert rebuilt.config == model.config
    rebuilt.load_state_dict(model.state_dict())
    model.eval(), rebuilt.eval()
    torch.testing.assert_close(
        rebuilt.predict(primary=image_pair[0], auxiliary=image_pair[1]),
        model.predict(primary=image_pair[0], auxiliary=image_pair[1]),
    )


def test_custom_tasks_are_data(tiny_model_kwargs, image_pair):
    tasks = [mmfuse.TaskSpec("malignant", ("no", "yes")), {"name": "site", "classes": ["a", "b", "c"]}]
    model = mmfuse.build_model(tasks=tasks, **tiny_model_kwargs)
    out = model(primary=image_pair[0], auxiliary=image_pair[1])
    assert {t: v.shape[-1] for t, v in out.logits["fusion"].items()} == {"malignant": 2, "site": 3}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"fusion_stages": [7]}, "fusion stage 7 is out of range"),
        ({"colour": "red"}, r"unknown model config fields \['colour'\]"),
        ({"tasks": "derm8pt"}, "unknown task preset 'derm8pt'"),
        ({"tasks": [{"name": "x", "classes": ["only"]}]}, "needs at least two classes"),
    ],
)
def test_bad_configs_are_explained(tiny_model_kwargs, overrides, message):
    with pytest.raises(ValueError, match=message):
        mmfuse.build_model(**{**tiny_model_kwargs, **overrides})


def test_unknown_preset_lists_presets():
    with pytest.raises(ValueError, match=r"unknown preset 'ammfm-vit'; available: \['ammfm-convnext'"):
        mmfuse.build_model("ammfm-vit")


def test_predict_refuses_a_missing_primary_image_in_a_list(tiny_model_kwargs):
    model = mmfuse.build_model(**tiny_model_kwargs)
    image = torch.zeros(20, 24, 3, dtype=torch.uint8).numpy()
    with pytest.raises(ValueError, match="every case needs its primary image"):
        model.predict(primary=[image, None], auxiliary=[image, image])
    with_missing_auxiliary = model.predict(primary=[image, image], auxiliary=[image, None])
    assert with_missing_auxiliary["DIAG"].shape[0] == 2
