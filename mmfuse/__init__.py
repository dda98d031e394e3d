"""mmfuse: asymmetric multimodal fusion for multi-label medical image classification.

The public names are the keys of ``_EXPORTS`` below, which also makes ``__all__``: they load on first use
(PEP 562), so ``import mmfuse`` and ``mmfuse --help`` do not pay for torch and timm, and
``from mmfuse import build_model`` imports exactly what it needs. Every exception lives in
:mod:`mmfuse.errors`; the three that nearly every caller catches are here too. The other public modules
(``mmfuse.data``, ``mmfuse.evaluation``, ``mmfuse.hub``...) are listed in docs/api.md.
"""

from __future__ import annotations

import importlib
import warnings
from typing import TYPE_CHECKING

from mmfuse import errors  # cheap, and mmfuse.errors.DataError then works after a bare ``import mmfuse``
from mmfuse._lazy import lazy_exports
from mmfuse._version import __version__

# Public name -> the module that defines it.
_EXPORTS: dict[str, str] = {
    # Models: build, load, run.
    "build_model": "mmfuse.factory",
    "from_pretrained": "mmfuse.hub",
    "FusionModel": "mmfuse.hub",
    "FusionNetwork": "mmfuse.model",
    "FusionOutput": "mmfuse.model",
    "HEADS": "mmfuse.head_mixing",
    "list_presets": "mmfuse.presets",
    "register_preset": "mmfuse.registry",
    # What a model is given: images, tasks, metadata.
    "create_transform": "mmfuse.data.transforms",
    "resolve_data_config": "mmfuse.data.transforms",
    "TaskSpec": "mmfuse.tasks",
    "DERM7PT_TASKS": "mmfuse.tasks",
    "MetadataEncoding": "mmfuse.metadata",
    # The contracts a plugin implements, and the hook marker.
    "hookimpl": "mmfuse.hookspecs",
    "Encoder": "mmfuse.interfaces",
    "FusionBlock": "mmfuse.interfaces",
    "StreamFusionBlock": "mmfuse.interfaces",
    "MetadataEncoder": "mmfuse.interfaces",
    "Combiner": "mmfuse.interfaces",
    "Head": "mmfuse.interfaces",
    "spatial_attention": "mmfuse.attention",
    # Registering components: register (one decorator for every kind) or its per-kind alias. Listing and
    # creating components one by one is mmfuse.registry's (list_fusions, create_fusion, ...).
    "register": "mmfuse.registry",
    "register_plugin": "mmfuse.registry",
    "unregister_plugin": "mmfuse.registry",
    "register_encoder": "mmfuse.registry",
    "register_fusion": "mmfuse.registry",
    "register_metadata_encoder": "mmfuse.registry",
    "register_combiner": "mmfuse.registry",
    "register_head": "mmfuse.registry",
    "register_dataset_format": "mmfuse.registry",
    # The errors nearly every caller catches (the whole hierarchy is in mmfuse.errors).
    "MmfuseError": "mmfuse.errors",
    "UnknownNameError": "mmfuse.errors",
    "ModelNotFoundError": "mmfuse.errors",
}

# The same names, imported for type checkers and IDEs; tests/test_public_api.py holds them to _EXPORTS.
if TYPE_CHECKING:
    from mmfuse.attention import spatial_attention
    from mmfuse.data.transforms import create_transform, resolve_data_config
    from mmfuse.errors import MmfuseError, ModelNotFoundError, UnknownNameError
    from mmfuse.factory import build_model
    from mmfuse.head_mixing import HEADS
    from mmfuse.hookspecs import hookimpl
    from mmfuse.hub import FusionModel, from_pretrained
    from mmfuse.interfaces import Combiner, Encoder, FusionBlock, Head, MetadataEncoder, StreamFusionBlock
    from mmfuse.metadata import MetadataEncoding
    from mmfuse.model import FusionNetwork, FusionOutput
    from mmfuse.presets import list_presets
    from mmfuse.registry import (
        register,
        register_combiner,
        register_dataset_format,
        register_encoder,
        register_fusion,
        register_head,
        register_metadata_encoder,
        register_plugin,
        register_preset,
        unregister_plugin,
    )
    from mmfuse.tasks import DERM7PT_TASKS, TaskSpec

# Names that were public here in 0.1.0 and now live elsewhere (docs/api.md, "Before -> after"):
# old name -> (module, name there). They still resolve, with a DeprecationWarning naming their home, until 0.3.
_MOVED: dict[str, tuple[str, str]] = {
    **{name: ("mmfuse.errors", name) for name in errors.__all__ if name not in _EXPORTS},
    "ConfigError": ("mmfuse.errors", "RunConfigError"),  # renamed as well as moved
    "InvalidConfigError": ("mmfuse.errors", "ModelConfigError"),
    "DatasetFormat": ("mmfuse.data", "DatasetFormat"),
    "UnknownFormatError": ("mmfuse.data", "UnknownFormatError"),
    "resolve_tasks": ("mmfuse.tasks", "resolve_tasks"),
    **{
        name: ("mmfuse.registry", name)
        for kind in ("encoder", "fusion", "metadata_encoder", "combiner", "head")
        for name in (f"list_{kind}s", f"create_{kind}")
    },
    "list_dataset_formats": ("mmfuse.registry", "list_dataset_formats"),
}

_exported, __dir__ = lazy_exports(globals(), _EXPORTS)


def __getattr__(name: str):
    if name not in _MOVED:
        return _exported(name)
    module, new_name = _MOVED[name]
    warnings.warn(
        f"mmfuse.{name} moved to {module}.{new_name}; the old name goes in 0.3", DeprecationWarning, stacklevel=2
    )
    return getattr(importlib.import_module(module), new_name)


__all__ = ["__version__", *_EXPORTS]
