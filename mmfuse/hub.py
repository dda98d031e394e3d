"""Saving, loading and publishing models: a plain-data config, safetensors weights and a model card.

:func:`from_pretrained` resolves a name in this order (the first rule that applies wins):

1. ``local-dir:PATH`` — the local directory ``PATH``, never the Hub.
2. ``hf-hub:OWNER/NAME[@REVISION]`` — that Hugging Face Hub repository, never a local folder.
3. A short name (:data:`NAMED_MODELS`: ``ammfm-swin``, ``ammfm-resnet``, ``ammfm-convnext``) — the Hub
   repository ``<namespace>/<name>``; the namespace is ``$MMFUSE_HUB_NAMESPACE`` or
   :data:`DEFAULT_NAMESPACE`. A folder of the same name in the working directory is *not* used (a
   warning says how to load it: ``local-dir:ammfm-swin`` or ``./ammfm-swin``).
4. An existing directory (any ``os.PathLike`` is always taken as a path) — loaded as is.
5. ``OWNER/NAME[@REVISION]`` — a Hub repository.

Anything else is an error listing these forms. Downloads go through huggingface_hub, so its cache,
``HF_HUB_OFFLINE``, ``HF_TOKEN`` and revisions apply; its errors are re-raised as
:class:`ModelNotFoundError` naming the repository and the fix.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shlex
import tempfile
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any

from huggingface_hub import ModelHubMixin

from mmfuse._version import __version__
from mmfuse.data.transforms import data_config_for, resolve_data_config
from mmfuse.errors import (
    BUILD_ERRORS,
    InvalidConfigError,
    MissingPluginError,
    ModelNotFoundError,
    PublishError,
    UnknownNameError,
    UnsafeCheckpointError,
    UsageError,
    WeightsMismatchError,
    describe_build_error,
)
from mmfuse.model import FusionNetwork
from mmfuse.model_card import render_model_card
from mmfuse.presets import COMPONENT_FIELDS, upgrade_config
from mmfuse.registry import (
    COMBINERS,
    ENCODERS,
    FUSIONS,
    HEAD_TYPES,
    METADATA_ENCODERS,
    encoder_entry,
    plugin_manager,
)
from mmfuse.safeweights import check_compatible, read_header
from mmfuse.tasks import resolve_tasks

if TYPE_CHECKING:
    from huggingface_hub import ModelCard
    from torch import nn

log = logging.getLogger(__name__)

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
CARD_FILE = "README.md"
MODEL_FILES = (CONFIG_FILE, WEIGHTS_FILE, CARD_FILE)
PICKLE_SUFFIXES = (".bin", ".pt", ".pth")
HUB_PICKLE_FILE = "pytorch_model.bin"

LOCAL_PREFIX = "local-dir:"
HUB_PREFIX = "hf-hub:"
NAMESPACE_ENV = "MMFUSE_HUB_NAMESPACE"
DEFAULT_NAMESPACE = "mmfuse"
NAMED_MODELS = ("ammfm-swin", "ammfm-resnet", "ammfm-convnext")
# Short names whose weights mmfuse has published in DEFAULT_NAMESPACE. None yet: training them needs the
# Derm7pt images and a GPU (docs/reproduce.md), so loading one fails at once instead of asking the Hub.
PUBLISHED_MODELS: frozenset[str] = frozenset()

# Saved-config keys that are not model config fields.
METADATA_KEYS = ("mmfuse_version", "providers", "preprocessing")
# Encoder options that would make loading read another file (timm unpickles .pth checkpoints): a
# saved config may not carry them; local weights are given to ``build_model(pretrained_files=...)``.
FORBIDDEN_OPTIONS = frozenset(
    {"pretrained", "pretrained_file", "pretrained_cfg", "pretrained_cfg_overlay", "checkpoint_path"}
)


# -- name resolution ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelLocation:
    """Where a model's files are: a local directory, or a Hub repository at a revision."""

    on_hub: bool
    target: str  # a directory path or a repo id
    revision: str | None = None

    def describe(self) -> str:
        if not self.on_hub:
            return f"local directory {self.target}"
        return f"Hub repository {self.target}" + (f" at revision {self.revision}" if self.revision else "")


def hub_namespace() -> str:
    """The Hub namespace of the short names: ``$MMFUSE_HUB_NAMESPACE`` or :data:`DEFAULT_NAMESPACE`."""
    return os.environ.get(NAMESPACE_ENV) or DEFAULT_NAMESPACE


def _is_repo_id(text: str) -> bool:
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    if text.count("/") != 1:
        return False
    try:
        validate_repo_id(text)
    except HFValidationError:
        return False
    return True


def _hub_location(spec: str, revision: str | None, original: str) -> ModelLocation:
    repo_id, _, at_revision = spec.partition("@")
    if at_revision and revision and at_revision != revision:
        raise UsageError(f"{original!r} names revision {at_revision!r} but revision={revision!r} was passed")
    if not _is_repo_id(repo_id):
        raise ModelNotFoundError(f"{original!r}: {repo_id!r} is not a Hub repo id of the form OWNER/NAME")
    return ModelLocation(True, repo_id, at_revision or revision)


def resolve_name(name_or_path: str | os.PathLike, revision: str | None = None) -> ModelLocation:
    """Apply the resolution order of this module's docstring; no file is read or downloaded."""
    if isinstance(name_or_path, os.PathLike):
        return _local_location(Path(name_or_path), str(name_or_path), revision)
    name = str(name_or_path)
    if name.startswith(LOCAL_PREFIX):
        return _local_location(Path(name[len(LOCAL_PREFIX) :]), name, revision)
    if name.startswith(HUB_PREFIX):
        return _hub_location(name[len(HUB_PREFIX) :], revision, name)
    if name in NAMED_MODELS:
        location = ModelLocation(True, f"{hub_namespace()}/{name}", revision)
        if Path(name).is_dir():
            warnings.warn(
                f"{name!r} is a published model name, so it loads {location.target} from the Hub; the "
                f"folder {name!r} in the working directory is not used (load it with "
                f"'{LOCAL_PREFIX}{name}' or './{name}')",
                stacklevel=3,
            )
        return location
    if Path(name).is_dir():
        return _local_location(Path(name), name, revision)
    if _is_repo_id(name.partition("@")[0]):
        return _hub_location(name, revision, name)
    raise ModelNotFoundError(
        f"cannot resolve model {name!r}: it is not an existing directory, a Hub repo id (OWNER/NAME), "
        f"or a published name ({', '.join(NAMED_MODELS)}). Use '{LOCAL_PREFIX}PATH' for a folder saved "
        f"with save_pretrained, or '{HUB_PREFIX}OWNER/NAME' for a Hub repository"
    )


def _local_location(path: Path, original: str, revision: str | None) -> ModelLocation:
    if revision is not None:
        raise UsageError(f"revision={revision!r} applies to Hub repositories, not to the path {original!r}")
    if path.is_file():
        kind = "a pickle checkpoint" if path.suffix in PICKLE_SUFFIXES else "a file"
        raise ModelNotFoundError(
            f"{original!r} is {kind}; from_pretrained takes the directory written by save_pretrained "
            f"(holding {CONFIG_FILE} and {WEIGHTS_FILE})"
        )
    if not path.is_dir():
        raise ModelNotFoundError(f"model directory {original!r} does not exist")
    return ModelLocation(False, str(path))


# -- fetching files -------------------------------------------------------------------------------------


def _fetch(
    location: ModelLocation,
    filename: str,
    *,
    token: str | bool | None,
    cache_dir: str | os.PathLike | None,
    required: bool = True,
) -> Path | None:
    """The local path of ``filename``; ``None`` when it does not exist and ``required`` is False."""
    if not location.on_hub:
        path = Path(location.target) / filename
        if path.is_file():
            return path
        if required:
            raise ModelNotFoundError(
                f"{location.describe()} has no {filename}; it is not a model saved with save_pretrained"
            )
        return None
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RemoteEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    where = location.describe()
    try:
        return Path(
            hf_hub_download(
                location.target,
                filename,
                revision=location.revision,
                cache_dir=cache_dir,
                token=token,
            )
        )
    except LocalEntryNotFoundError:
        raise ModelNotFoundError(
            f"{filename} of {where} is not in the Hugging Face cache and cannot be downloaded (offline: "
            "HF_HUB_OFFLINE is set or the Hub is unreachable). Download it once where there is network "
            f"(`hf download {location.target}`, then copy the cache and point HF_HUB_CACHE or cache_dir at "
            f"it), or load a local copy with '{LOCAL_PREFIX}PATH'"
        ) from None
    except GatedRepoError:
        raise ModelNotFoundError(
            f"{where} is gated: accept its terms on huggingface.co and log in (`hf auth login` or HF_TOKEN)"
        ) from None
    except RepositoryNotFoundError:
        raise ModelNotFoundError(
            f"{where} does not exist, or it is private and no token was given. Check the name (published "
            f"names: {', '.join(NAMED_MODELS)} in namespace {hub_namespace()!r}, set by ${NAMESPACE_ENV}) or "
            "log in (`hf auth login`, HF_TOKEN or token=)"
        ) from None
    except RevisionNotFoundError:
        raise ModelNotFoundError(
            f"{where} has no such revision; pass an existing branch, tag or commit"
        ) from None
    except RemoteEntryNotFoundError:
        if required:
            raise ModelNotFoundError(
                f"{where} has no {filename}; it was not published with mmfuse's save_pretrained/push_to_hub"
            ) from None
        return None
    except HfHubHTTPError as exc:
        raise ModelNotFoundError(f"downloading {filename} from {where} failed: {exc}") from None


# -- config ---------------------------------------------------------------------------------------------


def _plugin_package(plugin: str) -> str | None:
    """The distribution that ships ``plugin`` (a plugin-manager name), if it is known."""
    if plugin.startswith("mmfuse_plugins.") or plugin.startswith("mmfuse."):
        return "mmfuse"
    for ep in entry_points(group="mmfuse"):
        if ep.name == plugin and ep.dist is not None:
            return ep.dist.name
    return None


def _registry(kind: str):
    return {
        "encoder": ENCODERS,
        "fusion": FUSIONS,
        "head": HEAD_TYPES,
        "combiner": COMBINERS,
        "metadata encoder": METADATA_ENCODERS,
    }[kind]


def component_provider(kind: str, name: str) -> dict:
    """``{"name", "plugin", "package"}`` of the component ``name`` of ``kind``, as recorded in config.json."""
    # An encoder nobody registered (any timm name) is resolved by a plugin; its entry names that plugin.
    entry = encoder_entry(name) if kind == "encoder" else _registry(kind).entry(name)
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


def read_config(path: Path, location: ModelLocation) -> tuple[dict, dict]:
    """Split a saved config.json into the model config and mmfuse's metadata, validating both."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidConfigError(f"{CONFIG_FILE} of {location.describe()} is not valid JSON: {exc}") from None
    except RecursionError:
        raise InvalidConfigError(f"{CONFIG_FILE} of {location.describe()} is nested too deeply") from None
    if not isinstance(data, dict):
        raise InvalidConfigError(f"{CONFIG_FILE} of {location.describe()} must hold a JSON object")
    metadata = {key: data.pop(key) for key in METADATA_KEYS if key in data}
    check_config(data, metadata.get("providers") or {}, location)
    try:
        data = upgrade_config(data)  # an older config.json builds the architecture it was trained with
    except ValueError as exc:
        raise InvalidConfigError(f"{CONFIG_FILE} of {location.describe()}: {exc}") from None
    return data, metadata


def _check_preprocessing(config: Mapping, stored: Any, location: ModelLocation) -> None:
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
        raise InvalidConfigError(
            f"{CONFIG_FILE} of {location.describe()}: 'preprocessing' {stored!r} is not the preprocessing its "
            f"img_size, mean and std imply ({expected}); delete the key or restore it"
        )


def check_config(config: Mapping, providers: Mapping, location: ModelLocation) -> None:
    """Every named component is registered (or its plugin is named as missing); no option loads files."""
    where = f"{CONFIG_FILE} of {location.describe()}"
    for field in COMPONENT_FIELDS:
        if not isinstance(config.get(field, ""), str):
            raise InvalidConfigError(f"{where}: {field!r} must be a registry name, got {config[field]!r}")
        options = config.get(f"{field}_options", {})
        if not isinstance(options, Mapping):
            raise InvalidConfigError(f"{where}: {field}_options must be an object, got {options!r}")
        forbidden = sorted(FORBIDDEN_OPTIONS & set(options))
        if forbidden:
            raise InvalidConfigError(
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
                _registry(kind).entry(name)
        except UnknownNameError as exc:
            provider = providers.get(field) or {}
            plugin = provider.get("plugin")
            if plugin is None or plugin_manager().has_plugin(plugin):
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


# -- weights --------------------------------------------------------------------------------------------


def _local_pickles(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.is_file() and p.suffix in PICKLE_SUFFIXES)


def _weights_file(
    location: ModelLocation, *, trust_pickle: bool, token: str | bool | None, cache_dir: Any
) -> Path:
    weights = _fetch(location, WEIGHTS_FILE, token=token, cache_dir=cache_dir, required=False)
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
    return _fetch(location, candidates[0], token=token, cache_dir=cache_dir)


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


# -- the public entry points ------------------------------------------------------------------------------


def from_pretrained(
    name_or_path: str | os.PathLike,
    *,
    revision: str | None = None,
    token: str | bool | None = None,
    cache_dir: str | os.PathLike | None = None,
    trust_pickle: bool = False,
    map_location: Any = "cpu",
    tasks: Any = None,
) -> FusionModel:
    """Load a model saved by :meth:`FusionModel.save_pretrained`, locally or from the Hub.

    See this module's docstring for how ``name_or_path`` is resolved. The architecture is built from
    ``config.json`` with backbone ``pretrained=False`` (no ImageNet download just to overwrite it),
    then ``model.safetensors`` is loaded strictly. The model is returned in eval mode.

    ``tasks`` (a task preset name or task specs) starts fine-tuning on another dataset: when they differ
    from the saved tasks, the heads are new (:meth:`FusionModel.reset_heads`) while the encoders and fusion
    blocks keep the loaded weights; the model remembers a Hub source as its card's ``base_model``.
    """
    location = resolve_name(name_or_path, revision)
    _refuse_unpublished(name_or_path, location)
    config_path = _fetch(location, CONFIG_FILE, token=token, cache_dir=cache_dir)
    config, metadata = read_config(config_path, location)
    try:
        model = FusionModel(config, pretrained=False)
    except (UnknownNameError, MissingPluginError):
        raise
    except BUILD_ERRORS as exc:
        # Besides mmfuse's own checks, timm and torch reject some options with their own exceptions.
        raise InvalidConfigError(
            f"{CONFIG_FILE} of {location.describe()} is not a valid model ({describe_build_error(exc)})"
        ) from None
    # After the constructor: its checks name a broken img_size, mean or std better than a mismatch would.
    _check_preprocessing(model.config, metadata.get("preprocessing"), location)
    weights = _weights_file(location, trust_pickle=trust_pickle, token=token, cache_dir=cache_dir)
    load_weights(model, weights, map_location=map_location)
    if tasks is not None:
        if resolve_tasks(tasks) != model.tasks:
            model.reset_heads(tasks)
        if location.on_hub:
            model.base_model = location.target
    return model.eval()


def _refuse_unpublished(name: object, location: ModelLocation) -> None:
    """A short name whose weights are not published fails here, with no network round trip."""
    if not isinstance(name, str) or name not in NAMED_MODELS or name in PUBLISHED_MODELS:
        return
    if location.target != f"{DEFAULT_NAMESPACE}/{name}":
        return  # $MMFUSE_HUB_NAMESPACE points at someone's copy: ask the Hub
    raise ModelNotFoundError(
        f"the weights of {name!r} are not published yet: training them needs the Derm7pt images and a GPU "
        f"(docs/reproduce.md). Build the untrained architecture with mmfuse.build_model({name!r}), train your "
        f"own (`mmfuse train`), load a saved copy with '{LOCAL_PREFIX}PATH', or set ${NAMESPACE_ENV} to a Hub "
        "namespace that publishes it"
    )


def upload_model_files(
    folder: str | os.PathLike,
    repo_id: str,
    *,
    token: str | None = None,
    private: bool | None = None,
    branch: str | None = None,
    create_pr: bool = False,
    commit_message: str = "Upload mmfuse model",
    replace_card: bool = False,
) -> str:
    """Upload exactly config.json, model.safetensors and README.md of ``folder`` in one commit.

    Returns the commit URL. The repository is created if needed. A README.md already in the repository
    (on ``branch``) is kept, since its owner may have written it by hand, unless ``replace_card``.
    """
    from huggingface_hub import CommitOperationAdd, HfApi

    folder = Path(folder)
    missing = [name for name in MODEL_FILES if not (folder / name).is_file()]
    if missing:
        raise ModelNotFoundError(f"{folder} lacks {missing}; write it with save_pretrained first")
    api = HfApi(token=token)
    try:
        repo_id = api.create_repo(repo_id, private=private, exist_ok=True).repo_id
        names = list(MODEL_FILES)
        if not replace_card and api.file_exists(repo_id, CARD_FILE, revision=branch):
            names.remove(CARD_FILE)
            log.warning(
                "%s already has a %s: kept it (replace_card=True, or `mmfuse push --replace-card`, overwrites it)",
                repo_id,
                CARD_FILE,
            )
        operations = [CommitOperationAdd(path_in_repo=name, path_or_fileobj=folder / name) for name in names]
        commit = api.create_commit(
            repo_id, operations, commit_message=commit_message, revision=branch, create_pr=create_pr
        )
    except Exception as exc:  # noqa: BLE001 - HTTP, connection (httpx) and offline errors all mean: not published
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PublishError(
            f"uploading {folder} to the Hub repository {repo_id} failed ({type(exc).__name__}: {reason}). Check "
            "the network (and that HF_HUB_OFFLINE is not set) and the token (`hf auth login`, HF_TOKEN or "
            "--token) with write access"
        ) from None
    return str(commit.commit_url)


class HubMixin(
    ModelHubMixin,
    library_name="mmfuse",
    license="apache-2.0",
    pipeline_tag="other",  # two images in: no Hub pipeline fits (see mmfuse.model_card.PIPELINE_TAG)
    tags=["mmfuse", "multimodal", "multi-label", "medical-imaging", "dermatology"],
):
    """``save_pretrained``/``push_to_hub``/``from_pretrained`` for :class:`mmfuse.FusionModel`.

    huggingface_hub's :class:`~huggingface_hub.ModelHubMixin` supplies the card metadata and the save
    flow; mmfuse replaces its loader (which tries a same-named local folder first, loads non-strictly
    and falls back to pickles) with :func:`from_pretrained`.
    """

    def _save_pretrained(self, save_directory: Path) -> None:
        import errno

        from safetensors import SafetensorError
        from safetensors.torch import save_model

        path = save_directory / WEIGHTS_FILE
        try:
            save_model(self, str(path))  # handles shared tensors, unlike save_file
        except SafetensorError as exc:  # safetensors reports a failed write (a full disk) as its own error
            raise OSError(errno.EIO, f"cannot write the weights ({exc})", str(path)) from None

    def save_pretrained(
        self,
        save_directory: str | os.PathLike,
        *,
        metrics: Mapping | None = None,
        training_config: Mapping | None = None,
        repo_id: str | None = None,
        **card: Any,
    ) -> Path:
        """Write config.json, model.safetensors and README.md (the model card) into ``save_directory``.

        ``metrics`` (a run's metrics.json) fills the card's results table and ``model-index``;
        ``training_config`` its recipe; ``repo_id`` its loading example. ``card`` takes the Hub metadata
        ``license``, ``tags``, ``datasets`` and ``base_model`` (see
        :func:`mmfuse.model_card.render_model_card`). Returns the directory.
        """
        directory = Path(save_directory)
        card = self.generate_model_card(
            metrics=metrics, training_config=training_config, repo_id=repo_id, **card
        )
        directory.mkdir(parents=True, exist_ok=True)
        card.save(directory / CARD_FILE)  # written first, so the mixin keeps it rather than its template
        super().save_pretrained(directory, config=hub_config(self))
        return directory

    def generate_model_card(
        self,
        *args,
        metrics: Mapping | None = None,
        training_config: Mapping | None = None,
        repo_id: str | None = None,
        license: str | None = None,
        tags: list[str] | None = None,
        datasets: list[str] | None = None,
        base_model: str | list[str] | None = None,
        **kwargs,
    ) -> ModelCard:
        return render_model_card(
            self,
            hub_config(self),
            card_data=self._hub_mixin_info.model_card_data,
            metrics=metrics,
            training_config=training_config,
            repo_id=repo_id,
            license=license,
            tags=tags,
            datasets=datasets,
            base_model=base_model,
        )

    def push_to_hub(
        self,
        repo_id: str,
        *,
        metrics: Mapping | None = None,
        training_config: Mapping | None = None,
        token: str | None = None,
        private: bool | None = None,
        branch: str | None = None,
        create_pr: bool = False,
        commit_message: str = "Upload mmfuse model",
        replace_card: bool = False,
        **card: Any,
    ) -> str:
        """Save into a temporary folder and upload its config, weights and card in one commit.

        ``card`` takes ``license``, ``tags``, ``datasets`` and ``base_model`` as :meth:`save_pretrained` does.
        A README.md already on the Hub is kept unless ``replace_card`` (see :func:`upload_model_files`).
        """
        with tempfile.TemporaryDirectory() as tmp:
            folder = self.save_pretrained(
                Path(tmp) / "model",
                metrics=metrics,
                training_config=training_config,
                repo_id=repo_id,
                **card,
            )
            return upload_model_files(
                folder,
                repo_id,
                token=token,
                private=private,
                branch=branch,
                create_pr=create_pr,
                commit_message=commit_message,
                replace_card=replace_card,
            )

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike, **kwargs) -> FusionModel:
        """Same as :func:`mmfuse.from_pretrained`."""
        return from_pretrained(name_or_path, **kwargs)


class FusionModel(FusionNetwork, HubMixin):
    """AMMFM and its relatives, with saving, loading and publishing; build one with
    :func:`mmfuse.build_model`, load one with :func:`mmfuse.from_pretrained`.

    The architecture is :class:`mmfuse.model.FusionNetwork` (the layer below); this class adds
    ``save_pretrained``, ``push_to_hub``, ``from_pretrained`` and the model card.
    """
