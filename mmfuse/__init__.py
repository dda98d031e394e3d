"""mmfuse: asymmetric multimodal fusion for multi-label medical image classification.

The public names are the keys of ``_EXPORTS`` below, which also makes ``__all__``: they load on first use
(PEP 562), so ``import mmfuse`` and ``mmfuse --help`` do not pay for torch and timm, and
``from mmfuse import build_model`` imports exactly what it needs. Every exception lives in
:mod:`mmfuse.errors`; the three that nearly every caller catches are here too. The other public modules
(``mmfuse.data``, ``mmfuse.evaluation``, ``mmfuse.hub``...) are listed in docs/api.md.
"""

from __future__ import annotations

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
    # The registries: register (one decorator for every kind, or its per-kind alias), list, create.
    "register": "mmfuse.registry",
    "register_plugin": "mmfuse.registry",
    "unregister_plugin": "mmfuse.registry",
    "register_encoder": "mmfuse.registry",
    "register_fusion": "mmfuse.registry",
    "register_metadata_encoder": "mmfuse.registry",
    "register_combiner": "mmfuse.registry",
    "register_head": "mmfuse.registry",
    "register_dataset_format": "mmfuse.registry",
    "list_encoders": "mmfuse.registry",
    "list_fusions": "mmfuse.registry",
    "list_metadata_encoders": "mmfuse.registry",
    "list_combiners": "mmfuse.registry",
    "list_heads": "mmfuse.registry",
    "list_dataset_formats": "mmfuse.registry",
    "create_encoder": "mmfuse.registry",
    "create_fusion": "mmfuse.registry",
    "create_metadata_encoder": "mmfuse.registry",
    "create_combiner": "mmfuse.registry",
    "create_head": "mmfuse.registry",
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
        create_combiner,
        create_encoder,
        create_fusion,
        create_head,
        create_metadata_encoder,
        list_combiners,
        list_dataset_formats,
        list_encoders,
        list_fusions,
        list_heads,
        list_metadata_encoders,
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

__getattr__, __dir__ = lazy_exports(globals(), _EXPORTS)

__all__ = ["__version__", *_EXPORTS]
