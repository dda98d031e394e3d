"""Fine-tuning: new heads for new tasks, encoders and fusion blocks as trained; from Python and from a run config."""

from __future__ import annotations

import pytest
import torch
from test_training_fixtures import make_paired_csv, make_release, tiny_config

import mmfuse
from mmfuse.pipeline import train
from mmfuse.training.config import RunConfigError

GRADE = [{"name": "GRADE", "classes": ["low", "high"]}]


def _state(module: torch.nn.Module) -> dict:
    return {k: v.clone() for k, v in module.state_dict().items()}


def _equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_reset_heads_keeps_encoders_and_fusion_blocks(tiny_model_kwargs, image_pair):
    torch.manual_seed(0)
    model = mmfuse.build_model("ammfm-swin", **tiny_model_kwargs)
    model.set_head_weights({"primary": 0.2, "auxiliary": 0.2, "fusion": 0.6})
    kept = {
        name: _state(getattr(model, name))
        for name in ("primary_encoder", "auxiliary_encoder", "fusion_blocks")
    }
    model.reset_heads(GRADE)
    for name, state in kept.items():
        assert _equal(state, getattr(model, name).state_dict())
    assert [t.name for t in model.tasks] == ["GRADE"] and model.config["tasks"] == GRADE
    assert model.head_weights_dict == pytest.approx({"primary": 1 / 3, "auxiliary": 1 / 3, "fusion": 1 / 3})
    out = model.predict(primary=image_pair[0], auxiliary=image_pair[1])
    assert list(out) == ["GRADE"] and out["GRADE"].shape == (2, 2)


def test_from_pretrained_with_tasks(tiny_model_kwargs, tmp_path):
    torch.manual_seed(0)
    source = mmfuse.build_model("ammfm-swin", **tiny_model_kwargs)
    source.save_pretrained(tmp_path / "source")
    same = mmfuse.from_pretrained(tmp_path / "source", tasks="derm7pt")  # the saved tasks: heads kept
    assert _equal(_state(source.heads), same.heads.state_dict())
    new = mmfuse.from_pretrained(tmp_path / "source", tasks=GRADE)
    assert _equal(_state(source.primary_encoder), new.primary_encoder.state_dict())
    assert set(new.heads["fusion"].classifiers) == {"GRADE"}
    new.save_pretrained(tmp_path / "finetuned")  # and it saves and loads as any model
    assert [t.name for t in mmfuse.from_pretrained(tmp_path / "finetuned").tasks] == ["GRADE"]


@pytest.mark.slow
def test_trainer_starts_from_a_run_with_the_new_datasets_tasks(tmp_path):
    release = make_release(tmp_path / "release", cases=30)
    source = tmp_path / "source"
    train(tiny_config(release, train={"epochs": 1, "swa": {"epochs": 0}}), source, evaluate=False)
    data = make_paired_csv(release, tmp_path / "grading", schema=True)
    config = tiny_config(data, train={"epochs": 1, "swa": {"epochs": 0}})
    config["data"].update(format="paired_csv", schema=str(data / "schema.yaml"))
    config["model"] = {"from_pretrained": str(source)}
    result = train(config, tmp_path / "finetuned", evaluate=False)
    assert [t.name for t in result.model.tasks] == ["GRADE"]
    with pytest.raises(RunConfigError, match="model.primary"):
        config["model"] = {"from_pretrained": str(source), "primary": "test_convnext"}
        train(config, tmp_path / "other", evaluate=False)
