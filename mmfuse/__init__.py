"""mmfuse: asymmetric multimodal fusion for multi-label medical image classification."""

from mmfuse._version import __version__
from mmfuse.errors import DuplicateNameError, MissingPluginError, MmfuseError, UnknownNameError
from mmfuse.factory import build_model
from mmfuse.hookspecs import hookimpl
from mmfuse.hub import (
    FusionModel,
    InvalidConfigError,
    ModelNotFoundError,
    PublishError,
    UnsafeCheckpointError,
    WeightsMismatchError,
    from_pretrained,
)
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
    list_encoders,
    list_fusions,
    list_heads,
    list_metadata_encoders,
    register_combiner,
    register_encoder,
    register_fusion,
    register_head,
    register_metadata_encoder,
    register_plugin,
    register_preset,
    unregister_plugin,
)
from mmfuse.tasks import DERM7PT_TASKS, TaskSpec, resolve_tasks

__all__ = [
    "__version__",
    "DERM7PT_TASKS",
    "HEADS",
    "Combiner",
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
    "UnknownNameError",
    "UnsafeCheckpointError",
    "WeightsMismatchError",
    "build_model",
    "create_combiner",
    "create_encoder",
    "create_fusion",
    "create_head",
    "create_metadata_encoder",
    "from_pretrained",
    "hookimpl",
    "list_combiners",
    "list_encoders",
    "list_fusions",
    "list_heads",
    "list_metadata_encoders",
    "list_presets",
    "register_combiner",
    "register_encoder",
    "register_fusion",
    "register_head",
    "register_metadata_encoder",
    "register_plugin",
    "register_preset",
    "resolve_tasks",
    "unregister_plugin",
]
