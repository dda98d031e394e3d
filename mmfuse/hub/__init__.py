"""Saving, loading and publishing models: a plain-data config, safetensors weights and a model card.

One job per module: :mod:`~mmfuse.hub.names` (which folder or repository a name means),
:mod:`~mmfuse.hub.download` (fetching a file), :mod:`~mmfuse.hub.serialization` (config.json and weights),
:mod:`~mmfuse.hub.mixin` (``FusionModel``), :mod:`~mmfuse.hub.loading` (``from_pretrained``) and
:mod:`~mmfuse.hub.upload` (publishing). This package re-exports their public names.

:func:`from_pretrained` resolves a name in this order (the first rule that applies wins):

1. ``local-dir:PATH`` — the local directory ``PATH``, never the Hub.
2. ``hf-hub:OWNER/NAME[@REVISION]`` — that Hugging Face Hub repository, never a local folder.
3. A short name (:data:`NAMED_MODELS`: ``ammfm-swin``, ``ammfm-resnet``, ``ammfm-convnext``) — the Hub
   repository ``<namespace>/<name>``; the namespace is ``$MMFUSE_HUB_NAMESPACE`` or
   :data:`DEFAULT_NAMESPACE`. A folder of the same name in the working directory is *not* used (a
   warning says how to load it: ``local-dir:ammfm-swin`` or ``./ammfm-swin``).
4. An existing directory (any ``os.PathLike`` is always taken as a path) — loaded as is; a training run
   folder (``mmfuse train --out RUN``) loads the model it saved in ``RUN/model``.
5. ``OWNER/NAME[@REVISION]`` — a Hub repository.

Anything else is an error listing these forms. Downloads go through huggingface_hub, so its cache,
``HF_HUB_OFFLINE``, ``HF_TOKEN`` and revisions apply; its errors are re-raised as
:class:`ModelNotFoundError` naming the repository and the fix.
"""

# Errors first raised here, importable from here as before.
from mmfuse.errors import (
    MissingPluginError,
    ModelConfigError,
    ModelNotFoundError,
    PublishError,
    UnsafeCheckpointError,
    WeightsMismatchError,
)
from mmfuse.hub.files import (
    CARD_FILE,
    CONFIG_FILE,
    HUB_PICKLE_FILE,
    MODEL_FILES,
    PICKLE_SUFFIXES,
    WEIGHTS_FILE,
)
from mmfuse.hub.mixin import FusionModel, HubMixin, from_pretrained
from mmfuse.hub.names import (
    DEFAULT_NAMESPACE,
    HUB_PREFIX,
    LOCAL_PREFIX,
    NAMED_MODELS,
    NAMESPACE_ENV,
    PUBLISHED_MODELS,
    ModelLocation,
    hub_namespace,
    resolve_name,
)
from mmfuse.hub.serialization import (
    FORBIDDEN_OPTIONS,
    METADATA_KEYS,
    check_config,
    component_provider,
    hub_config,
    install_hint,
    load_weights,
    read_config,
)
from mmfuse.hub.upload import upload_model_files

__all__ = [
    "CARD_FILE",
    "CONFIG_FILE",
    "DEFAULT_NAMESPACE",
    "FORBIDDEN_OPTIONS",
    "HUB_PICKLE_FILE",
    "HUB_PREFIX",
    "LOCAL_PREFIX",
    "METADATA_KEYS",
    "MODEL_FILES",
    "NAMED_MODELS",
    "NAMESPACE_ENV",
    "PICKLE_SUFFIXES",
    "PUBLISHED_MODELS",
    "WEIGHTS_FILE",
    "FusionModel",
    "HubMixin",
    "ModelConfigError",
    "MissingPluginError",
    "PublishError",
    "UnsafeCheckpointError",
    "WeightsMismatchError",
    "ModelLocation",
    "ModelNotFoundError",
    "check_config",
    "component_provider",
    "from_pretrained",
    "hub_config",
    "hub_namespace",
    "install_hint",
    "load_weights",
    "read_config",
    "resolve_name",
    "upload_model_files",
]
