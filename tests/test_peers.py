"""The peer methods of the paper's Tables 2–5 as presets of built-in plugins: they build, train, save, load."""

from __future__ import annotations

import pytest
import torch

import mmfuse
from mmfuse.fusion_stages import match_stage
from mmfuse.interfaces import StreamFusionBlock
from mmfuse.params import PEER_CONFIGURATIONS
from mmfuse.registry import PRESETS

TINY = "test_convnext"
# Each peer at unit-test size: timm's tiny backbone, narrower heads; everything else is the preset's.
SMALL = {
    "fusionm4net": {"head_options": {"hidden": [16, 8], "dropout": 0.3}},
    "tformer": {
        "fusion_stages": [1, 2, 3],
        "fusion_stage_options": {
            "1": {"num_heads": 2},
            "2": {"num_heads": 2},
            "3": {"depth": 2, "num_heads": 4},
        },
        "combiner_options": {"dim": 8, "num_heads": 2},
        "metadata_encoder_options": {"hidden": 8, "out_features": 8},
    },
    "cafnet": {},
    "incep-com": {},
}


def small_peer(name: str) -> mmfuse.FusionModel:
    return mmfuse.build_model(name, primary=TINY, auxiliary=TINY, img_size=64, **SMALL[name])


def _inputs(model, batch: int = 2):
    generator = torch.Generator().manual_seed(0)
    images = [torch.randn(batch, 3, 64, 64, generator=generator) for _ in range(2)]
    extra = {}
    if model.uses_metadata:
        extra["metadata"] = (
            torch.rand(batch, model.metadata_encoding.size, generator=generator) > 0.5
        ).float()
    return images, extra


def test_every_peer_is_a_preset_registered_by_a_builtin_plugin():
    for name in SMALL:
        assert name in mmfuse.list_presets()
        assert PRESETS.entry(name).provider.startswith("mmfuse_plugins.")
    assert {c.name for c in PEER_CONFIGURATIONS} == set(SMALL)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_peer_trains_a_step_and_round_trips_through_save_and_load(name, tmp_path):
    model = small_peer(name)
    (primary, auxiliary), extra = _inputs(model)
    model.train()
    out = model(primary=primary, auxiliary=auxiliary, **extra)
    assert set(out.logits) == {"primary", "auxiliary", "fusion"}
    loss = sum(
        torch.nn.functional.cross_entropy(v, torch.zeros(2, dtype=torch.long))
        for d in out.logits.values()
        for v in d.values()
    )
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None for g in grads), "every parameter takes part in the loss"
    model.eval()
    model.save_pretrained(tmp_path / name)
    loaded = mmfuse.from_pretrained(tmp_path / name)
    assert loaded.config == model.config
    expected = model.predict(primary=primary, auxiliary=auxiliary, **extra)
    again = loaded.predict(primary=primary, auxiliary=auxiliary, **extra)
    for task in expected:
        assert torch.allclose(expected[task], again[task], atol=1e-6)


def test_fusionm4net_heads_and_sum_fusion_follow_the_reference():
    model = small_peer("fusionm4net")
    assert model.combiner.out_features == model.primary_encoder.channels[-1]  # the pooled vectors are added
    head = model.heads["fusion"]
    assert [m.out_features for m in head.mlp if isinstance(m, torch.nn.Linear)] == [16, 8]
    assert sum(isinstance(m, torch.nn.BatchNorm1d) for m in head.mlp) == 2


def test_tformer_shares_its_encoder_and_carries_a_fusion_stream():
    model = small_peer("tformer")
    assert model.auxiliary_encoder is model.primary_encoder
    blocks = list(model.fusion_blocks.values())
    assert all(isinstance(b, StreamFusionBlock) for b in blocks) and len(blocks) == 3
    assert len(blocks[1].merge) == 2  # the stream is patch-merged into the next, wider stage
    (primary, auxiliary), extra = _inputs(model)
    fused_p, _, stream = model.eval().forward_fused(primary, auxiliary)
    plain_p = model.primary_encoder(primary)[-1]
    assert torch.equal(fused_p, plain_p)  # the encoders are not modified; the stream is its own branch
    assert stream[0].shape[1] == model.combiner.primary_features


def test_shared_encoder_is_stored_once(tmp_path):
    from safetensors import safe_open

    model = small_peer("tformer")
    model.save_pretrained(tmp_path / "m")
    with safe_open(tmp_path / "m" / "model.safetensors", "pt") as f:
        keys = list(f.keys())
    encoder_keys = [k for k in keys if k.startswith(("primary_encoder.", "auxiliary_encoder."))]
    assert len(encoder_keys) == len(model.primary_encoder.state_dict())


def test_share_encoder_needs_one_encoder_name():
    with pytest.raises(ValueError, match="share_encoder"):
        mmfuse.build_model(
            "ammfm-swin", primary=TINY, auxiliary="test_efficientnet", share_encoder=True, img_size=64
        )


def test_tformer_needs_metadata_and_says_so():
    from mmfuse.presets import preset_config

    config = {
        **preset_config("tformer"),
        **SMALL["tformer"],
        "primary": TINY,
        "auxiliary": TINY,
        "img_size": 64,
    }
    with pytest.raises(ValueError, match="needs metadata"):
        mmfuse.build_model({**config, "metadata": None})


@pytest.mark.slow
def test_full_size_peers_match_table_5():
    from mmfuse.params import peer_report

    rows = {r["name"]: r for r in peer_report()}
    # The reference code's own counts (its modules built with random weights and counted):
    # FusionM4Net = ours plus the two unused torchvision classifiers it builds, Table 5's 54.45 M;
    # TFormer = ours without our two branch heads, plus its unused Linear(768, 128) Swin classifier.
    assert rows["fusionm4net"]["params"] == 50_373_448
    assert rows["fusionm4net"]["reference_params"] == 54_471_448
    assert rows["tformer"]["reference_params"] == 78_238_362
    assert rows["tformer"]["params"] == pytest.approx(77.76e6, rel=0.01)
    assert rows["cafnet"]["params"] > 51.2e6  # "≫ 51.2 M"


def test_fusionm4net_second_stage_learns_from_metadata():
    pytest.importorskip("sklearn")
    from mmfuse_plugins.fusionm4net import SecondStage

    from mmfuse.tasks import TaskSpec

    tasks = (TaskSpec("DIAG", ("a", "b")), TaskSpec("RS", ("ABS", "PRS", "X")))
    generator = torch.Generator().manual_seed(0)
    n = 120
    metadata = (torch.rand(n, 4, generator=generator) > 0.5).float()
    labels = torch.stack([metadata[:, 0].long(), (metadata[:, 1] + metadata[:, 2]).long()], dim=1)
    # First-stage probabilities that know nothing: only the metadata carries the answer.
    probabilities = {t.name: torch.full((n, t.num_classes), 1 / t.num_classes) for t in tasks}
    stage = SecondStage(tasks).fit({k: v[:80] for k, v in probabilities.items()}, metadata[:80], labels[:80])
    out = stage.predict_proba({k: v[80:] for k, v in probabilities.items()}, metadata[80:])
    assert {k: tuple(v.shape) for k, v in out.items()} == {"DIAG": (40, 2), "RS": (40, 3)}
    assert torch.allclose(out["RS"].sum(dim=1), torch.ones(40), atol=1e-5)
    accuracy = (out["DIAG"].argmax(dim=1) == labels[80:, 0]).float().mean()
    assert accuracy > 0.9


@pytest.mark.slow
def test_training_cli_trains_a_peer_preset(tmp_path):
    from test_training_fixtures import make_release, tiny_config, write_config

    from mmfuse.cli import main

    release = make_release(tmp_path / "derm7pt", cases=24, size=32)
    config = tiny_config(
        release,
        model={"primary": TINY, "auxiliary": TINY, **SMALL["tformer"]},
        train={"epochs": 1, "swa": {"epochs": 0, "anneal_epochs": 1}},
    )
    run = ["train", str(write_config(tmp_path / "run.yaml", config)), "--out", str(tmp_path / "run")]
    assert main([*run, "--preset", "tformer"]) == 0
    loaded = mmfuse.from_pretrained(tmp_path / "run" / "model")
    assert loaded.config["combiner"] == "metadata_attention" and loaded.uses_metadata


def test_stage_pairing_ties_go_to_the_same_depth():
    # An encoder with repeated reductions: the shared Swin of TFormer is cut after each patch merging
    # and again after its last blocks (reductions 4, 8, 16, 32, 32). Stage 3 must pair with stage 3,
    # not with the deeper stage 4 of the same reduction.
    swin = {"embed_dim": 16, "depths": (1, 1, 1, 1), "num_heads": (1, 1, 1, 1)}
    model = mmfuse.build_model(
        "tformer",
        img_size=64,
        primary_options=swin,
        auxiliary_options=swin,
        fusion_stage_options={s: {"num_heads": 2} for s in "1234"},
        combiner_options={"dim": 8, "num_heads": 2},
        metadata_encoder_options={"hidden": 8, "out_features": 8},
    )
    assert model.primary_encoder.reductions == [4, 8, 16, 32, 32]
    assert model.fusion_pairs == {1: 1, 2: 2, 3: 3, 4: 4}
    # Between different encoders: the nearest reduction first, then the nearest depth, then the deeper.
    assert match_stage(2, 16, [4, 8, 16, 16, 32]) == 2
    assert match_stage(3, 16, [4, 8, 16, 16, 32]) == 3
    assert match_stage(0, 4, [2, 4, 8, 16, 32]) == 1
    assert match_stage(1, 8, [4, 16]) == 1


@pytest.mark.slow
def test_a_run_fits_fusionm4nets_second_stage_on_the_validation_split(tmp_path):
    pytest.importorskip("sklearn")
    import json

    from test_training_fixtures import make_release, tiny_config, write_config

    from mmfuse.cli import main

    release = make_release(tmp_path / "derm7pt", cases=40, size=32)
    config = tiny_config(
        release,
        model={"primary": TINY, "auxiliary": TINY, **SMALL["fusionm4net"]},
        train={"epochs": 1, "swa": {"epochs": 0, "anneal_epochs": 1}},
        evaluation={"second_stage": "logistic", "bootstrap": {"resamples": 0}},
    )
    run = ["train", str(write_config(tmp_path / "run.yaml", config)), "--out", str(tmp_path / "run")]
    assert main([*run, "--preset", "fusionm4net"]) == 0
    report = json.loads((tmp_path / "run" / "second_stage.json").read_text())
    assert (report["classifier"], report["fitted_on"]) == ("logistic", "valid")
    assert set(report) == {"classifier", "fitted_on", "test"}  # reported on the splits it was not fitted on
    for stage in ("second_stage", "first_stage"):
        assert 0 <= report["test"][stage]["avg_acc"] <= 1
