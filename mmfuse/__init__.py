"""mmfuse: asymmetric multimodal fusion for multi-label medical image classification."""

from mmfuse.errors import DuplicateNameError, MissingPluginError, MmfuseError, UnknownNameError
from mmfuse.hookspecs import hookimpl
from mmfuse.hub import (
    InvalidConfigError,
    ModelNotFoundError,
    PublishError,
    UnsafeCheckpointError,
    WeightsMismatchError,
    from_pretrained,
)
from mmfuse.interfaces import Encoder, FusionBlock
from mmfuse.model import HEADS, FusionModel, FusionOutput
from mmfuse.presets import build_model, list_presets
from mmfuse.registry import (
    create_encoder,
    create_fusion,
    list_encoders,
    list_fusions,
    register_encoder,
    register_fusion,
    register_plugin,
    unregister_plugin,
)
from mmfuse.tasks import DERM7PT_TASKS, TaskSpec, resolve_tasks

__version__ = "0.1.0"

__all__ = [
    "DERM7PT_TASKS",
    "HEADS",
    "DuplicateNameError",
    "Encoder",
    "FusionBlock",
    "FusionModel",
    "FusionOutput",
    "InvalidConfigError",
    "MissingPluginError",
    "MmfuseError",
    "ModelNotFoundError",
    "PublishError",
    "TaskSpec",
    "UnknownNameError",
    "UnsafeCheckpointError",
    "WeightsMismatchError",
    "build_model",
    "create_encoder",
    "create_fusion",
    "from_pretrained",
    "hookimpl",
    "list_encoders",
    "list_fusions",
    "list_presets",
    "register_encoder",
    "register_fusion",
    "register_plugin",
    "resolve_tasks",
    "unregister_plugin",
]
