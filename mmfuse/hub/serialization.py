"""config.json and model.safetensors: what a saved model holds, and the checks that make loading it safe.

A saved config names its components by registry name and records the plugin that provided each, so a
missing plugin is reported by name; weights load strictly, from safetensors unless pickles are trusted.
"""

from __future__ import annotations

import json
import re
import shlex
import warnings
from collections.abc import Mapping
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmfuse._version import __version__
from mmfuse.data.transforms import data_config_for, resolve_data_config
from mmfuse.errors import (
    MissingPluginError,
    ModelConfigError,
    ModelNotFoundError,
    UnknownNameError,
    UnsafeCheckpointError,
    WeightsMismatchError,
)
from mmfuse.hub.download import HubDownload, fetch
from mmfuse.hub.files import CONFIG_FILE, HUB_PICKLE_FILE, PICKLE_SUFFIXES, WEIGHTS_FILE
from mmfuse.hub.names import ModelLocation
from mmfuse.model import FusionNetwork
from mmfuse.presets import COMPONENT_FIELDS, upgrade_config
from mmfuse.registry import REGISTRIES, USER_PROVIDER, encoder_entry, ensure_plugins_loaded
from mmfuse.safeweights import check_compatible, read_header

if TYPE_CHECKING:
    from torch import nn

# Saved-config keys that are not model config fields.
METADATA_KEYS = ("mmfuse_version", "providers", "preprocessing")
# Encoder options that would make loading read another file (timm unpickles .pth checkpoints): a
# saved config may not carry them; local weights are given to ``build_model(pretrained_files=...)``.
FORBIDDEN_OPTIONS = frozenset(
    {"pretrained", "pretrained_file", "pretrained_cfg", "pretrained_cfg_overlay", "checkpoint_path"}
)


def _plugin_package(plugin: str) -> str | None:
    """The distribution that ships ``plugin`` (a plugin-manager name), if it is known."""
    if plugin.startswith("mmfuse_plugins.") or plugin.startswith("mmfuse."):
        return "mmfuse"
    for ep in entry_points(group="mmfuse"):
        if ep.name == plugin and ep.dist is not None:
            return ep.dist.name
    return None


def component_provider(kind: str, name: str) -> dict:
    """``{"name", "plugin", "package"}`` of the component ``name`` of ``kind``, as recorded in config.json."""
    # An encoder nobody registered (any timm name) is resolved by a plugin; its entry names that plugin.
    entry = encoder_entry(name) if kind == "encoder" else REGISTRIES[kind].entry(name)
    plugin = entry.provider
    return {"name": name, "plugin": plugin, "package": _plugin_package(plugin)}


def hub_config(model: FusionNetwork) -> dict:
    """``model.config`` plus the mmfuse version, the plugin that provides each named component, and the
    complete image preprocessing (:func:`mmfuse.data.transforms.resolve_data_config`)."""
    config = model.config
    providers = {
        field: component_provider(kind, config[field])
        for field, kind in COMPONENT_FIELDS.items()
        if field != "metadata_encoder" or config.get("metadata") is not None
    }
    return {
        **config,
        "mmfuse_version": __version__,
        "providers": providers,
        "preprocessing": resolve_data_config(config),
    }


SCRIPT_PROVIDERS = ("__main__", USER_PROVIDER)


def warn_script_components(providers: Mapping[str, Mapping], stacklevel: int = 2) -> None:
    """A component registered in a script exists only while that script runs: say so while saving."""
    local = [f"{field} {p['name']!r}" for field, p in providers.items() if p["plugin"] in SCRIPT_PROVIDERS]
    if local:
        warnings.warn(
            f"{', '.join(local)} {'was' if len(local) == 1 else 'were'} registered in a script (__main__), "
            "so this saved model loads only in a process that registers the same name first. To load it "
            "anywhere, move the registration into a plugin package advertised in the 'mmfuse' entry-point "
            'group (docs/plugins.md, "Shipping a plugin package") and install it where the model is loaded',
            UserWarning,
            stacklevel=stacklevel + 1,
        )


def read_config(path: Path, location: ModelLocation) -> tuple[dict, dict]:
    """Split a saved config.json into the model config and mmfuse's metadata, validating both."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelConfigError(f"{CONFIG_FILE} of {location.describe()} is not valid JSON: {exc}") from None
    except RecursionError:
        raise ModelConfigError(f"{CONFIG_FILE} of {location.describe()} is nested too deeply") from None
    if not isinstance(data, dict):
        raise ModelConfigError(f"{CONFIG_FILE} of {location.describe()} must hold a JSON object")
    metadata = {key: data.pop(key) for key in METADATA_KEYS if key in data}
    check_config(data, metadata.get("providers") or {}, location)
    try:
        data = upgrade_config(data)  # an older config.json builds the architecture it was trained with
    except ValueError as exc:
        raise ModelConfigError(f"{CONFIG_FILE} of {location.describe()}: {exc}") from None
    return data, metadata


def check_preprocessing(config: Mapping, stored: Any, location: ModelLocation) -> None:
    """A stored preprocessing must be the one the model's ``img_size``, ``mean`` and ``std`` imply.

    mmfuse prepares images one way (docs/deploy.md); a config.json that promises another would make
    ``predict`` disagree with a deployment that follows the file.
    """
    if stored is None:
        return
    try:
        expected = data_config_for(config.get("img_size", 224), config["mean"], config["std"])
    except (KeyError, TypeError, ValueError):
        return  # check_config and the model constructor name the broken field
    if not isinstance(stored, Mapping) or dict(stored) != expected:
        raise ModelConfigError(
            f"{CONFIG_FILE} of {location.describe()}: 'preprocessing' {stored!r} is not the preprocessing its "
            f"img_size, mean and std imply ({expected}); delete the key or restore it"
        )


def check_config(config: Mapping, providers: Mapping, location: ModelLocation) -> None:
    """Every named component is registered (or its plugin is named as missing); no option loads files."""
    where = f"{CONFIG_FILE} of {location.describe()}"
    for field in COMPONENT_FIELDS:
        if not isinstance(config.get(field, ""), str):
            raise ModelConfigError(f"{where}: {field!r} must be a registry name, got {config[field]!r}")
        options = config.get(f"{field}_options", {})
        if not isinstance(options, Mapping):
            raise ModelConfigError(f"{where}: {field}_options must be an object, got {options!r}")
        forbidden = sorted(FORBIDDEN_OPTIONS & set(options))
        if forbidden:
            raise ModelConfigError(
                f"{where}: {field}_options may not set {forbidden} (they make loading read other files); "
                "give local backbone weights to build_model(pretrained_files=...) instead"
            )
    for field, kind in COMPONENT_FIELDS.items():
        name = config.get(field)
        if name is None or (field == "metadata_encoder" and config.get("metadata") is None):
            continue
        try:
            if kind == "encoder":
                encoder_entry(name)
            else:
                REGISTRIES[kind].entry(name)
        except UnknownNameError as exc:
            provider = providers.get(field) or {}
            plugin = provider.get("plugin")
            if plugin is None or ensure_plugins_loaded().has_plugin(plugin):
                raise UnknownNameError(f"{where}: {exc}") from None
            fix = install_hint(provider.get("package"), plugin)
            raise MissingPluginError(
                f"{where} needs {field} {name!r} from the mmfuse plugin {plugin!r}, which is not installed "
                f"here; {fix} and load again"
            ) from None


# A PEP 508 distribution name (no version specifiers, URLs or shell syntax).
_DISTRIBUTION_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,98}[A-Za-z0-9])?")


def install_hint(package: object, plugin: object) -> str:
    """How to install a missing plugin. ``package`` comes from a downloaded config.json: it is untrusted
    text, so it is suggested as a ``pip install`` command only when it is a plain distribution name, and
    always shell-quoted; anything else is shown as a quoted string, never as a command."""
    if isinstance(package, str) and _DISTRIBUTION_NAME.fullmatch(package):
        return f"pip install {shlex.quote(package)}"
    if package:
        return (
            f"install the distribution that provides the plugin {str(plugin)!r} (config.json names it "
            f"{str(package)!r}, which is not a valid package name: check where this model came from)"
        )
    return f"install or import the plugin {str(plugin)!r}"


def _local_pickles(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.is_file() and p.suffix in PICKLE_SUFFIXES)


def weights_file(location: ModelLocation, download: HubDownload, *, trust_pickle: bool) -> Path:
    weights = fetch(location, WEIGHTS_FILE, download, required=False)
    if weights is not None:
        return weights
    if location.on_hub:
        candidates = [HUB_PICKLE_FILE]
    else:
        candidates = [p.name for p in _local_pickles(Path(location.target))]
        if not candidates:
            raise ModelNotFoundError(f"{location.describe()} has no {WEIGHTS_FILE}")
    if not trust_pickle:
        raise UnsafeCheckpointError(
            f"{location.describe()} has no {WEIGHTS_FILE}; mmfuse loads safetensors only, and a pickle "
            f"checkpoint ({', '.join(candidates)}) can run arbitrary code when loaded. Pass "
            "trust_pickle=True only if you trust its author, or convert it to safetensors"
        )
    if len(candidates) > 1:
        raise ModelNotFoundError(
            f"{location.describe()} holds several pickle checkpoints {candidates}; keep exactly one"
        )
    return fetch(location, candidates[0], download)


def load_weights(model: nn.Module, path: Path, *, map_location: Any = "cpu") -> None:
    """Load ``path`` into ``model`` strictly: any missing or unexpected tensor is an error listing them."""
    import safetensors
    import safetensors.torch
    import torch

    try:
        if path.suffix == ".safetensors":
            check_compatible(model.state_dict(), read_header(path), path)
            missing, unexpected = safetensors.torch.load_model(model, path, strict=False, device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=False)  # the caller trusts it
            if isinstance(state, Mapping) and isinstance(state.get("state_dict"), Mapping):
                state = state["state_dict"]
            missing, unexpected = model.load_state_dict(state, strict=False)
    except (RuntimeError, OSError, ValueError, safetensors.SafetensorError) as exc:
        raise WeightsMismatchError(f"cannot load weights from {path}: {exc}") from None
    if missing or unexpected:
        raise WeightsMismatchError(
            f"weights in {path} do not match the architecture in its config: missing tensors "
            f"{sorted(missing) or 'none'}; unexpected tensors {sorted(unexpected) or 'none'}"
        )
    model.to(map_location)
