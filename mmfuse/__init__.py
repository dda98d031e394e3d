"""mmfuse: asymmetric multimodal fusion for multi-label medical image classification.

The names below load on first use (PEP 562): ``import mmfuse`` and ``mmfuse --help`` do not pay for
torch and timm, and ``from mmfuse import build_model`` imports exactly what it needs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mmfuse._lazy import lazy_exports
from mmfuse._version import __version__
from mmfuse.errors import (
    CheckpointError,
    CompareError,
    ConfigError,
    CorruptWeightsError,
    DataError,
    DuplicateNameError,
    ExportError,
    InvalidConfigError,
    MissingPluginError,
    MmfuseError,
    ModelConfigError,
    ModelNotFoundError,
    NonFiniteLossError,
    NonFiniteOutputError,
    PluginError,
    PublishError,
    RunDirError,
    TaskMismatchError,
    UnknownNameError,
    UnknownOptionError,
    UnsafeCheckpointError,
    UsageError,
    WeightsMismatchError,
)

# Public name -> the module that defines it.
_LAZY: dict[str, str] = {
    "create_transform": "mmfuse.data.transforms",
    "resolve_data_config": "mmfuse.data.transforms",
    "DatasetFormat": "mmfuse.data.formats",
    "UnknownFormatError": "mmfuse.data.formats",
    "build_model": "mmfuse.factory",
    "hookimpl": "mmfuse.hookspecs",
    "FusionModel": "mmfuse.hub",
    "from_pretrained": "mmfuse.hub",
    "Combiner": "mmfuse.interfaces",
    "Encoder": "mmfuse.interfaces",
    "FusionBlock": "mmfuse.interfaces",
    "Head": "mmfuse.interfaces",
    "MetadataEncoder": "mmfuse.interfaces",
    "StreamFusionBlock": "mmfuse.interfaces",
    "MetadataEncoding": "mmfuse.metadata",
    "FusionNetwork": "mmfuse.model",
    "FusionOutput": "mmfuse.model",
    "HEADS": "mmfuse.model",
    "list_presets": "mmfuse.presets",
    "create_combiner": "mmfuse.registry",
    "create_encoder": "mmfuse.registry",
    "create_fusion": "mmfuse.registry",
    "create_head": "mmfuse.registry",
    "create_metadata_encoder": "mmfuse.registry",
    "list_combiners": "mmfuse.registry",
    "list_dataset_formats": "mmfuse.registry",
    "list_encoders": "mmfuse.registry",
    "list_fusions": "mmfuse.registry",
    "list_heads": "mmfuse.registry",
    "list_metadata_encoders": "mmfuse.registry",
    "register": "mmfuse.registry",
    "register_combiner": "mmfuse.registry",
    "register_dataset_format": "mmfuse.registry",
    "register_encoder": "mmfuse.registry",
    "register_fusion": "mmfuse.registry",
    "register_head": "mmfuse.registry",
    "register_metadata_encoder": "mmfuse.registry",
    "register_plugin": "mmfuse.registry",
    "register_preset": "mmfuse.registry",
    "unregister_plugin": "mmfuse.registry",
    "DERM7PT_TASKS": "mmfuse.tasks",
    "TaskSpec": "mmfuse.tasks",
    "resolve_tasks": "mmfuse.tasks",
}

if TYPE_CHECKING:  # what type checkers and IDEs see: the same names, imported eagerly
    from mmfuse.data.formats import DatasetFormat, UnknownFormatError
    from mmfuse.data.transforms import create_transform, resolve_data_config
    from mmfuse.factory import build_model
    from mmfuse.hookspecs import hookimpl
    from mmfuse.hub import FusionModel, from_pretrained
    from mmfuse.interfaces import Combiner, Encoder, FusionBlock, Head, MetadataEncoder, StreamFusionBlock
    from mmfuse.metadata import MetadataEncoding
    from mmfuse.model import HEADS, FusionNetwork, FusionOutput
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
    from mmfuse.tasks import DERM7PT_TASKS, TaskSpec, resolve_tasks


__getattr__, __dir__ = lazy_exports(globals(), _LAZY)

__all__ = [
    "__version__",
    "DERM7PT_TASKS",
    "HEADS",
    "Combiner",
    "DatasetFormat",
    "DuplicateNameError",
    "Encoder",
    "FusionBlock",
    "FusionModel",
    "FusionNetwork",
    "FusionOutput",
    "Head",
    "InvalidConfigError",
    "MetadataEncoder",
    "MetadataEncoding",
    "MissingPluginError",
    "MmfuseError",
    "ModelNotFoundError",
    "PublishError",
    "StreamFusionBlock",
    "TaskSpec",
    "UnknownFormatError",
    "UnknownNameError",
    "UnsafeCheckpointError",
    "WeightsMismatchError",
    "build_model",
    "create_combiner",
    "create_encoder",
    "create_transform",
    "create_fusion",
    "create_head",
    "create_metadata_encoder",
    "from_pretrained",
    "hookimpl",
    "list_combiners",
    "list_dataset_formats",
    "list_encoders",
    "list_fusions",
    "list_heads",
    "list_metadata_encoders",
    "list_presets",
    "register_combiner",
    "register_dataset_format",
    "register_encoder",
    "register_fusion",
    "register_head",
    "register_metadata_encoder",
    "register_plugin",
    "register_preset",
    "resolve_data_config",
    "resolve_tasks",
    "unregister_plugin",
    "CheckpointError",
    "CompareError",
    "ConfigError",
    "CorruptWeightsError",
    "DataError",
    "ExportError",
    "ModelConfigError",
    "NonFiniteLossError",
    "NonFiniteOutputError",
    "PluginError",
    "RunDirError",
    "TaskMismatchError",
    "UnknownOptionError",
    "UsageError",
]
