"""mmfuse: asymmetric multimodal fusion for multi-label medical image classification."""

from mmfuse.errors import DuplicateNameError, MissingPluginError, MmfuseError, UnknownNameError
from mmfuse.hookspecs import hookimpl
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
    "MissingPluginError",
    "MmfuseError",
    "TaskSpec",
    "UnknownNameError",
    "build_model",
    "create_encoder",
    "create_fusion",
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
