"""Loading a saved model: resolve a name, fetch config and weights, check both, build the class, load strictly."""

from __future__ import annotations

import os
from typing import Any, TypeVar

from mmfuse.errors import (
    BUILD_ERRORS,
    InvalidConfigError,
    MissingPluginError,
    UnknownNameError,
    describe_build_error,
)
from mmfuse.hub.download import fetch
from mmfuse.hub.files import CONFIG_FILE
from mmfuse.hub.names import refuse_unpublished, resolve_name
from mmfuse.hub.serialization import check_preprocessing, load_weights, read_config, weights_file
from mmfuse.tasks import resolve_tasks

Model = TypeVar("Model")


def load_pretrained(
    model_class: type[Model],
    name_or_path: str | os.PathLike,
    *,
    revision: str | None = None,
    token: str | bool | None = None,
    cache_dir: str | os.PathLike | None = None,
    trust_pickle: bool = False,
    map_location: Any = "cpu",
    tasks: Any = None,
) -> Model:
    """``model_class(config)`` with the saved weights: what :func:`mmfuse.from_pretrained` does.

    Taking the class keeps this module below the one that defines ``FusionModel``, and lets a subclass
    load as itself (``MyModel.from_pretrained(...)``).
    """
    location = resolve_name(name_or_path, revision)
    refuse_unpublished(name_or_path, location)
    config_path = fetch(location, CONFIG_FILE, token=token, cache_dir=cache_dir)
    config, metadata = read_config(config_path, location)
    try:
        model = model_class(config, pretrained=False)
    except (UnknownNameError, MissingPluginError):
        raise
    except BUILD_ERRORS as exc:
        # Besides mmfuse's own checks, timm and torch reject some options with their own exceptions.
        raise InvalidConfigError(
            f"{CONFIG_FILE} of {location.describe()} is not a valid model ({describe_build_error(exc)})"
        ) from None
    # After the constructor: its checks name a broken img_size, mean or std better than a mismatch would.
    check_preprocessing(model.config, metadata.get("preprocessing"), location)
    weights = weights_file(location, trust_pickle=trust_pickle, token=token, cache_dir=cache_dir)
    load_weights(model, weights, map_location=map_location)
    if tasks is not None:
        if resolve_tasks(tasks) != model.tasks:
            model.reset_heads(tasks)
        if location.on_hub:
            model.base_model = location.target
    return model.eval()
