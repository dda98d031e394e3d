"""The registry and plugin system: what a plugin author and a user rely on."""

from __future__ import annotations

import inspect
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import pytest
import torch

import mmfuse
import mmfuse.registry
from mmfuse import hookspecs
from mmfuse.registry import ENCODERS, FUSIONS, PRESETS, REGISTRIES

REPO = Path(__file__).resolve().parents[1]


def test_builtins_are_registered_with_their_provider():
    assert {"aab", "bab", "concat"} <= set(mmfuse.registry.list_fusions())
    assert {"mobilenetv3_large_100", "swin_tiny_patch4_window7_224", "resnet50", "convnext_tiny"} <= set(
        mmfuse.registry.list_encoders()
    )
    assert FUSIONS.entry("aab").provider == "mmfuse_plugins.fusions"
    assert ENCODERS.entry("resnet50").provider == "mmfuse_plugins.timm_encoders"


def test_list_filters_by_glob():
    assert mmfuse.registry.list_encoders("swin*") == ["swin_tiny_patch4_window7_224"]
    assert mmfuse.registry.list_fusions("?ab") == ["aab", "bab"]


def test_entry_point_plugin_works_by_name(tiny_model_kwargs, image_pair):
    # examples/plugin_package is installed by `make setup`; it arrives through the "mmfuse" entry-point group.
    assert FUSIONS.entry("gated").provider == "example"
    model = mmfuse.build_model(
        "ammfm-swin", **{**tiny_model_kwargs, "fusion": "gated", "primary": "tiny_cnn"}
    )
    out = model(primary=image_pair[0], auxiliary=image_pair[1])
    assert out.logits["fusion"]["DIAG"].shape == (2, 5)


def test_decorator_registration_works_by_name(tiny_model_kwargs, image_pair):
    @mmfuse.register_fusion("scaled_sum")
    class ScaledSum(mmfuse.FusionBlock):
        def __init__(self, primary_channels, auxiliary_channels):
            super().__init__(primary_channels, auxiliary_channels)
            self.project = torch.nn.Conv2d(auxiliary_channels, primary_channels, 1)

        def forward(self, primary, auxiliary):
            aligned = torch.nn.functional.interpolate(auxiliary, size=primary.shape[-2:])
            return primary + self.project(aligned), auxiliary

    try:
        assert FUSIONS.entry("scaled_sum").provider == __name__
        model = mmfuse.build_model(fusion="scaled_sum", **tiny_model_kwargs)
        assert isinstance(next(iter(model.fusion_blocks.values())), ScaledSum)
        assert model(primary=image_pair[0], auxiliary=image_pair[1]).logits["primary"]["PN"].shape == (2, 3)
    finally:
        FUSIONS.unregister("scaled_sum")


def test_taken_name_is_an_error_unless_override():
    with pytest.raises(
        mmfuse.errors.DuplicateNameError, match="'aab' is already registered by 'mmfuse_plugins.fusions'"
    ):
        mmfuse.register_fusion("aab")(FUSIONS.entry("concat").obj)
    original = FUSIONS.entry("concat")
    try:
        mmfuse.register_fusion("concat", override=True)(FUSIONS.entry("aab").obj)
        assert FUSIONS.entry("concat").obj is FUSIONS.entry("aab").obj
    finally:
        FUSIONS.register("concat", original.obj, override=True, provider=original.provider)


def test_every_registration_hook_fills_the_registry_of_its_kind():
    hooks = {name for name in vars(hookspecs) if name.startswith("register_")}
    assert {registry.hook_name for registry in REGISTRIES.values()} == hooks
    assert REGISTRIES["dataset format"].hook_name == "register_dataset_formats"


def test_generic_register_is_the_kind_specific_decorator():
    """``register("head", name)`` is ``register_head(name)``: same registry, same provider, same errors."""

    @mmfuse.register("head", "generic_head")
    def generic_head(in_features, tasks):
        return REGISTRIES["head"].entry("linear").obj(in_features, tasks)

    try:
        assert REGISTRIES["head"].entry("generic_head").provider == __name__
        assert "generic_head" in mmfuse.registry.list_heads()
        with pytest.raises(mmfuse.errors.DuplicateNameError, match="head 'generic_head' is already registered"):
            mmfuse.register_head("generic_head")(generic_head)
    finally:
        REGISTRIES["head"].unregister("generic_head")
    with pytest.raises(mmfuse.UnknownNameError, match="unknown registry kind 'heads'; available: encoder, fusion"):
        mmfuse.register("heads", "x")


def test_unregistering_a_plugin_removes_what_it_provided_in_every_kind():
    plugin = types.ModuleType("two_kinds")

    @mmfuse.hookimpl
    def register_fusions(register):
        register("two_kinds_fusion", FUSIONS.entry("concat").obj)

    @mmfuse.hookimpl
    def register_presets(register):
        register("two-kinds-preset", {"fusion": "two_kinds_fusion"})

    plugin.register_fusions, plugin.register_presets = register_fusions, register_presets
    name = mmfuse.register_plugin(plugin, name="two_kinds")
    assert "two_kinds_fusion" in FUSIONS and "two-kinds-preset" in PRESETS
    mmfuse.unregister_plugin(name)
    assert "two_kinds_fusion" not in FUSIONS and "two-kinds-preset" not in PRESETS
    assert FUSIONS.entry("concat").provider == "mmfuse_plugins.fusions"


def test_presets_are_one_registry_filled_by_plugins():
    """The paper's presets arrive through register_presets like the peers': one list, one provider each."""
    assert mmfuse.list_presets() == PRESETS.names()
    assert {"ammfm-swin", "ammfm-swin-fast", "baseline-resnet", "fusionm4net", "tformer"} <= set(
        PRESETS.names()
    )
    assert PRESETS.entry("ammfm-swin").provider == "mmfuse_plugins.ammfm_presets"
    assert PRESETS.entry("fusionm4net").provider == "mmfuse_plugins.fusionm4net"


def test_a_taken_preset_name_is_refused_unless_override(tiny_model_kwargs):
    """Before one store, register_preset("ammfm-swin", ...) was accepted and silently ignored."""
    original = PRESETS.entry("ammfm-swin")
    mine = {**original.obj, "fusion": "bab"}
    with pytest.raises(
        mmfuse.errors.DuplicateNameError,
        match="'ammfm-swin' is already registered by 'mmfuse_plugins.ammfm_presets'",
    ):
        mmfuse.register_preset("ammfm-swin", mine)
    assert mmfuse.build_model("ammfm-swin", **tiny_model_kwargs).config["fusion"] == "aab"
    try:
        mmfuse.register_preset("ammfm-swin", mine, override=True)
        assert mmfuse.build_model("ammfm-swin", **tiny_model_kwargs).config["fusion"] == "bab"
    finally:
        PRESETS.register("ammfm-swin", original.obj, override=True, provider=original.provider)


def test_a_plugin_registering_a_taken_preset_name_is_refused():
    plugin = types.ModuleType("preset_squatter")

    @mmfuse.hookimpl
    def register_presets(register):
        register("tformer", {"fusion": "concat"})

    plugin.register_presets = register_presets
    try:
        with pytest.raises(mmfuse.errors.DuplicateNameError, match="preset 'tformer' is already registered"):
            mmfuse.register_plugin(plugin, name="preset_squatter")
        assert PRESETS.entry("tformer").provider == "mmfuse_plugins.tformer"
    finally:
        mmfuse.unregister_plugin("preset_squatter")


def test_unknown_names_list_what_is_available(tiny_model_kwargs):
    with pytest.raises(mmfuse.UnknownNameError, match=r"unknown fusion 'nope'; available: aab, bab, concat"):
        mmfuse.build_model(fusion="nope", **tiny_model_kwargs)
    with pytest.raises(mmfuse.UnknownNameError, match=r"unknown encoder 'nope'.*resnet50.*timm model name"):
        mmfuse.build_model(primary="nope", auxiliary="test_efficientnet", img_size=64)


def test_any_stage_splittable_timm_model_is_an_encoder():
    encoder = mmfuse.registry.create_encoder("test_byobnet")
    assert encoder.reductions == [2, 4, 8, 16, 32]
    assert mmfuse.registry.create_encoder("timm:test_byobnet").channels == encoder.channels


def test_runtime_plugin_object_registers_and_unregisters():
    plugin = types.ModuleType("my_runtime_plugin")

    @mmfuse.hookimpl
    def register_fusions(register):
        register("runtime_identity", FUSIONS.entry("concat").obj)

    plugin.register_fusions = register_fusions
    name = mmfuse.register_plugin(plugin, name="my_runtime_plugin")
    try:
        assert FUSIONS.entry("runtime_identity").provider == "my_runtime_plugin"
    finally:
        mmfuse.unregister_plugin(name)
    assert "runtime_identity" not in mmfuse.registry.list_fusions()


def test_a_hook_implementation_may_take_a_subset_of_the_arguments():
    """hookspecs.py promises it (so a spec can grow): an implementation naming no argument is still called."""
    plugin = types.ModuleType("takes_nothing")
    calls = []

    @mmfuse.hookimpl
    def register_fusions():
        calls.append("called")

    plugin.register_fusions = register_fusions
    name = mmfuse.register_plugin(plugin, name="takes_nothing")
    try:
        assert calls == ["called"]
    finally:
        mmfuse.unregister_plugin(name)


def test_an_encoder_resolved_by_a_plugin_records_that_plugin(tiny_model_kwargs):
    """config.json names the plugin that resolved an unregistered encoder name, not the hook's name."""
    from mmfuse.hub import hub_config
    from mmfuse.registry import encoder_entry

    plugin = types.ModuleType("my_resolver")

    @mmfuse.hookimpl
    def resolve_encoder(name):
        if name.startswith("mine:"):
            return lambda pretrained=False, **options: mmfuse.registry.create_encoder(
                name.removeprefix("mine:"), **options
            )
        return None

    plugin.resolve_encoder = resolve_encoder
    registered = mmfuse.register_plugin(plugin, name="my_resolver")
    try:
        assert encoder_entry("mine:test_convnext").provider == "my_resolver"
        assert encoder_entry("test_byobnet").provider == "mmfuse_plugins.timm_encoders"
        kwargs = {**tiny_model_kwargs, "primary": "mine:test_convnext"}
        providers = hub_config(mmfuse.build_model("ammfm-swin", **kwargs))["providers"]
        assert providers["primary"]["plugin"] == "my_resolver"
    finally:
        mmfuse.unregister_plugin(registered)


def _run_python(code: str, env_extra: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess:
    import os

    env = {**os.environ, **env_extra}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=False,
    )


def test_environment_switch_disables_entry_point_autoload(tmp_path):
    code = "import mmfuse.registry; print(sorted(mmfuse.registry.list_fusions()))"
    enabled = _run_python(code, {}, tmp_path)
    disabled = _run_python(code, {"MMFUSE_DISABLE_PLUGIN_AUTOLOAD": "1"}, tmp_path)
    assert "'gated'" in enabled.stdout
    assert "'gated'" not in disabled.stdout and "'aab'" in disabled.stdout


def test_plugin_that_fails_to_import_is_reported_by_name(tmp_path):
    dist = tmp_path / "broken_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[mmfuse]\nbroken = module_that_does_not_exist_xyz\n")
    code = """
        import warnings
        warnings.simplefilter("always")
        import mmfuse
        from mmfuse.registry import failed_plugins
        print("aab" in mmfuse.registry.list_fusions(), sorted(failed_plugins()))
        try:
            mmfuse.registry.create_fusion("nope", 8, 8)
        except mmfuse.UnknownNameError as e:
            print(e)
    """
    result = _run_python(code, {"PYTHONPATH": str(tmp_path)}, tmp_path)
    assert "True ['broken']" in result.stdout
    assert "mmfuse plugin 'broken' (module_that_does_not_exist_xyz) failed to import" in result.stderr
    assert "Plugins that failed to load: broken" in result.stdout


def test_every_hook_is_documented_with_its_signature():
    docs = (REPO / "docs" / "plugins.md").read_text()
    for name, function in inspect.getmembers(hookspecs, inspect.isfunction):
        if not hasattr(function, "mmfuse_spec"):
            continue
        assert function.__doc__, f"hook {name} has no docstring"
        assert f"{name}{inspect.signature(function)}".split(" ->")[0].replace("'", "") in docs.replace(
            "'", ""
        ), name


def test_builtins_load_from_a_source_checkout_that_was_never_installed():
    code = """
        import sys
        # Forget the editable install: only the checkout on sys.path remains.
        sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in (getattr(f, "__module__", "") or "")]
        import mmfuse.registry
        print(mmfuse.registry.list_fusions(), mmfuse.registry.FUSIONS.entry("aab").provider)
    """
    result = _run_python(code, {"MMFUSE_DISABLE_PLUGIN_AUTOLOAD": "1", "PYTHONPATH": str(REPO)}, REPO)
    assert result.returncode == 0, result.stderr
    assert "['aab', 'bab', 'concat', 'tformer'] mmfuse_plugins.fusions" in result.stdout
