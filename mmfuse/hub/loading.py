"""Loading a saved model: resolve a name, fetch config and weights, check both, build the class, load strictly."""

from __future__ import annotations

import os
from typing import Any, TypeVar

from mmfuse.errors import (
    BUILD_ERRORS,
    MissingPluginError,
    ModelConfigError,
    UnknownNameError,
    describe_build_error,
)
from mmfuse.hub.download import HubDownload, fetch
from mmfuse.hub.files import CONFIG_FILE
from mmfuse.hub.names import refuse_unpublished, resolve_name
from mmfuse.hub.serialization import check_preprocessing, load_weights, read_config, weights_file
from mmfuse.tasks import resolve_tasks

Model = TypeVar("Model")


def from_pretrained(
    cls: type[Model],
    pretrained_model_name_or_path: str | os.PathLike,
    *,
    force_download: bool = False,
    token: str | bool | None = None,
    cache_dir: str | os.PathLike | None = None,
    local_files_only: bool = False,
    revision: str | None = None,
    trust_pickle: bool = False,
    map_location: Any = "cpu",
    tasks: Any = None,
) -> Model:
    """Load a model saved by :meth:`FusionModel.save_pretrained`, locally or from the Hub.

    :mod:`mmfuse.hub` says how ``pretrained_model_name_or_path`` is resolved. ``force_download``,
    ``token``, ``cache_dir``, ``local_files_only`` and ``revision`` are
    :meth:`huggingface_hub.ModelHubMixin.from_pretrained`'s keywords with its meaning (a local folder
    ignores all but ``revision``, which it refuses). The architecture is built from ``config.json`` with
    backbone ``pretrained=False`` (no ImageNet download just to overwrite it), then ``model.safetensors``
    is loaded strictly. The model is returned in eval mode.

    ``trust_pickle`` allows a pickle checkpoint where no safetensors exist (it can run code);
    ``map_location`` is where the weights are loaded. ``tasks`` (a task preset name or task specs) starts
    fine-tuning on another dataset: when they differ from the saved tasks, the heads are new
    (:meth:`FusionModel.reset_heads`) while the encoders and fusion blocks keep the loaded weights; the
    model remembers a Hub source as its card's ``base_model``.

    This is the one signature of loading: it is ``FusionModel.from_pretrained`` (a classmethod, so a
    subclass loads as itself) and :func:`mmfuse.from_pretrained` (bound to ``FusionModel``).
    """
    name_or_path = pretrained_model_name_or_path
    download = HubDownload(
        token=token, cache_dir=cache_dir, force_download=force_download, local_files_only=local_files_only
    )
    location = resolve_name(name_or_path, revision)
    refuse_unpublished(name_or_path, location)
    config_path = fetch(location, CONFIG_FILE, download)
    config, metadata = read_config(config_path, location)
    try:
        model = cls(config, pretrained=False)
    except (UnknownNameError, MissingPluginError):
        raise
    except BUILD_ERRORS as exc:
        # Besides mmfuse's own checks, timm and torch reject some options with their own exceptions.
        raise ModelConfigError(
            f"{CONFIG_FILE} of {location.describe()} is not a valid model ({describe_build_error(exc)})"
        ) from None
    # After the constructor: its checks name a broken img_size, mean or std better than a mismatch would.
    check_preprocessing(model.config, metadata.get("preprocessing"), location)
    weights = weights_file(location, download, trust_pickle=trust_pickle)
    load_weights(model, weights, map_location=map_location)
    if tasks is not None:
        if resolve_tasks(tasks) != model.tasks:
            model.reset_heads(tasks)
        if location.on_hub:
            model.base_model = location.target
    return model.eval()
