"""The Hub mixin's contract: every keyword of huggingface_hub's ModelHubMixin is ours, with its meaning.

The signatures are compared with the installed huggingface_hub's, so a keyword a new release adds fails
here rather than in a user's code as a TypeError.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
import torch
from huggingface_hub import ModelHubMixin

import mmfuse
from mmfuse import FusionModel
from mmfuse.hub import MODEL_FILES

COMMIT = "0123456789abcdef0123456789abcdef01234567"
# Defaults that differ on purpose (the meaning is the same): our commits say what they upload.
OWN_DEFAULTS = {("push_to_hub", "commit_message")}


def _parameters(function) -> list[inspect.Parameter]:
    return [p for p in inspect.signature(function).parameters.values() if p.name not in ("self", "cls")]


@pytest.mark.parametrize(
    ("method", "ours"),
    [
        ("from_pretrained", FusionModel.from_pretrained),
        ("from_pretrained", mmfuse.from_pretrained),
        ("save_pretrained", FusionModel.save_pretrained),
        ("push_to_hub", FusionModel.push_to_hub),
    ],
)
def test_every_mixin_keyword_is_accepted_with_its_default(method, ours):
    theirs = _parameters(getattr(ModelHubMixin, method))
    mine = {p.name: p for p in _parameters(ours)}
    positional = [p.name for p in _parameters(ours) if p.kind is p.POSITIONAL_OR_KEYWORD]
    assert positional == [p.name for p in theirs if p.kind is p.POSITIONAL_OR_KEYWORD], method
    for parameter in theirs:
        if parameter.kind is parameter.VAR_KEYWORD:
            # save_pretrained(**push_to_hub_kwargs) passes push_to_hub's keywords: ours must take them too.
            # from_pretrained(**model_kwargs) are the model's own: ours names them (trust_pickle, tasks...).
            if method == "save_pretrained":
                assert any(p.kind is p.VAR_KEYWORD for p in mine.values()), method
            continue
        assert parameter.name in mine, f"{method} lacks the mixin's keyword {parameter.name!r}"
        assert mine[parameter.name].kind is parameter.kind, (method, parameter.name)
        if (method, parameter.name) not in OWN_DEFAULTS:
            assert mine[parameter.name].default == parameter.default, (method, parameter.name)


def test_the_top_level_function_is_the_classmethod():
    """One signature, written once: mmfuse.from_pretrained is FusionModel.from_pretrained."""
    assert mmfuse.from_pretrained == FusionModel.from_pretrained
    assert inspect.signature(mmfuse.from_pretrained) == inspect.signature(FusionModel.from_pretrained)


@pytest.fixture
def saved(tiny_model_kwargs, tmp_path) -> tuple[FusionModel, Path]:
    torch.manual_seed(0)
    model = mmfuse.build_model("ammfm-swin", **tiny_model_kwargs).eval()
    return model, model.save_pretrained(tmp_path / "model")


def test_a_folder_loads_with_the_mixins_keywords(saved, image_pair):
    model, folder = saved
    hub_keywords = dict(
        local_files_only=True, force_download=False, revision=None, token=None, cache_dir=None
    )
    for loaded in (
        mmfuse.from_pretrained(folder, **hub_keywords),
        FusionModel.from_pretrained(pretrained_model_name_or_path=folder, **hub_keywords),
    ):
        assert isinstance(loaded, FusionModel) and not loaded.training
        assert torch.equal(loaded.predict(*image_pair)["DIAG"], model.predict(*image_pair)["DIAG"])


def test_the_download_keywords_reach_huggingface_hub(saved, tmp_path, monkeypatch):
    _, folder = saved
    calls = []

    def hf_hub_download(repo_id, filename, **kwargs):
        calls.append({"repo_id": repo_id, "filename": filename, **kwargs})
        return str(folder / filename)

    monkeypatch.setattr("huggingface_hub.hf_hub_download", hf_hub_download)
    mmfuse.from_pretrained(
        "derm-lab/tiny",
        force_download=True,
        token="hf_secret",
        cache_dir=tmp_path / "cache",
        local_files_only=False,
        revision="v1",
    )
    assert [c["filename"] for c in calls] == ["config.json", "model.safetensors"]
    for call in calls:
        assert call["repo_id"] == "derm-lab/tiny" and call["revision"] == "v1"
        assert call["force_download"] is True and call["local_files_only"] is False
        assert call["token"] == "hf_secret" and call["cache_dir"] == tmp_path / "cache"


def test_local_files_only_loads_from_the_cache_and_names_itself_when_missing(saved, tmp_path):
    _, folder = saved
    snapshot = tmp_path / "cache" / "models--derm-lab--tiny" / "snapshots" / COMMIT
    snapshot.mkdir(parents=True)
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text(COMMIT)
    for name in MODEL_FILES:
        (snapshot / name).write_bytes((folder / name).read_bytes())
    loaded = mmfuse.from_pretrained("derm-lab/tiny", local_files_only=True, cache_dir=tmp_path / "cache")
    assert isinstance(loaded, FusionModel)
    with pytest.raises(mmfuse.ModelNotFoundError, match="local_files_only=True"):
        mmfuse.from_pretrained("derm-lab/other", local_files_only=True, cache_dir=tmp_path / "cache")


def test_save_pretrained_refuses_another_config_and_unknown_keywords(saved, tmp_path):
    model, _ = saved
    assert model.save_pretrained(tmp_path / "same", config=model.config) == tmp_path / "same"
    with pytest.raises(mmfuse.errors.UsageError, match="model's own config"):
        model.save_pretrained(tmp_path / "other", config={**model.config, "fusion": "bab"})
    with pytest.raises(TypeError, match="private"):
        model.save_pretrained(tmp_path / "unpushed", private=True)  # an upload keyword without push_to_hub
