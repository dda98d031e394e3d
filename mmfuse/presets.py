"""Named configurations from the paper, and :func:`build_model`.

A configuration is plain data. Presets name the paper's setups; keyword overrides change any field,
so ``build_model("ammfm-swin", fusion="bab")`` is the AFF+BAB row of Table 9.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping

from mmfuse.errors import UsageError
from mmfuse.metadata import MetadataEncoding
from mmfuse.registry import PRESETS as registered_presets
from mmfuse.tasks import resolve_tasks, tasks_to_data

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

MOBILENET = "mobilenetv3_large_100"
SWIN = "swin_tiny_patch4_window7_224"
RESNET = "resnet50"
CONVNEXT = "convnext_tiny"

DEFAULTS: dict = {
    "primary": SWIN,
    "primary_options": {},
    "auxiliary": MOBILENET,
    "auxiliary_options": {},
    "fusion": "aab",
    "fusion_options": {},
    "fusion_stage_options": {},  # {"<stage>": {...}}: options for one stage's block, over fusion_options
    "fusion_stages": None,  # None: the measured default (see mmfuse.model.default_fusion_stages)
    "tasks": "derm7pt",
    "img_size": 224,
    "mean": IMAGENET_MEAN,
    "std": IMAGENET_STD,
    "head_dropout": 0.0,
    "head_weights": {"primary": 1 / 3, "auxiliary": 1 / 3, "fusion": 1 / 3},
    # Post-hoc calibration, {head: {task: T}} fitted on the validation split; None: plain softmax.
    "temperatures": None,
    "share_encoder": False,  # one encoder runs both images (TFormer); auxiliary must equal primary
    "head": "linear",
    "head_options": {},
    "combiner": "concat",  # the fusion head's input from the pooled branches (and metadata)
    "combiner_options": {},
    "metadata": None,  # a fitted MetadataEncoding.to_dict(): the model then takes a metadata input
    "metadata_encoder": "mlp",
    "metadata_encoder_options": {},
}

# Config fields naming a registered component, with the registry kind they are looked up in.
COMPONENT_FIELDS: dict[str, str] = {
    "primary": "encoder",
    "auxiliary": "encoder",
    "fusion": "fusion",
    "head": "head",
    "combiner": "combiner",
    "metadata_encoder": "metadata encoder",
}

PRESETS: dict[str, dict] = {
    # AMMFM: a light auxiliary encoder, a heavy primary one, asymmetric attention (Tables 6, 7, 10).
    "ammfm-swin": {"primary": SWIN, "auxiliary": MOBILENET, "fusion": "aab"},
    "ammfm-resnet": {"primary": RESNET, "auxiliary": MOBILENET, "fusion": "aab"},
    "ammfm-convnext": {"primary": CONVNEXT, "auxiliary": MOBILENET, "fusion": "aab"},
    # The symmetric baselines: the same backbone twice, fused only by the concatenating head.
    "baseline-swin": {"primary": SWIN, "auxiliary": SWIN, "fusion": "concat"},
    "baseline-resnet": {"primary": RESNET, "auxiliary": RESNET, "fusion": "concat"},
    "baseline-convnext": {"primary": CONVNEXT, "auxiliary": CONVNEXT, "fusion": "concat"},
}


def list_presets() -> list[str]:
    """The core's presets and those plugins register (``register_presets`` hook)."""
    return sorted({*PRESETS, *registered_presets.names()})


def preset_config(name: str) -> dict:
    """The plain-data fields of preset ``name`` (the core's, else a plugin's)."""
    if name in PRESETS:
        return copy.deepcopy(PRESETS[name])
    if name in registered_presets:
        return copy.deepcopy(dict(registered_presets.entry(name).obj))
    raise UsageError(f"unknown preset {name!r}; available: {list_presets()}")


def normalize_config(config: Mapping) -> dict:
    """Fill defaults and validate field names; the result is JSON-serialisable plain data."""
    unknown = set(config) - set(DEFAULTS) - {"preset"}
    if unknown:
        raise UsageError(f"unknown model config fields {sorted(unknown)}; known fields: {sorted(DEFAULTS)}")
    merged = copy.deepcopy(DEFAULTS)
    merged.update(copy.deepcopy(dict(config)))
    merged["tasks"] = tasks_to_data(resolve_tasks(merged["tasks"]))
    merged["mean"] = [float(v) for v in merged["mean"]]
    merged["std"] = [float(v) for v in merged["std"]]
    merged["fusion_stage_options"] = {str(k): dict(v) for k, v in merged["fusion_stage_options"].items()}
    if isinstance(merged["metadata"], MetadataEncoding):
        merged["metadata"] = merged["metadata"].to_dict()
    if isinstance(merged["fusion_stages"], (list, tuple)):
        merged["fusion_stages"] = [int(s) for s in merged["fusion_stages"]]
    return merged


def resolve_config(spec: str | Mapping | None = None, **overrides) -> dict:
    """A preset name or a config mapping, with keyword overrides applied (``None`` values ignored)."""
    if spec is None:
        spec = "ammfm-swin"
    if isinstance(spec, str):
        config = {"preset": spec, **preset_config(spec)}
    else:
        config = dict(spec)
    config.update({k: v for k, v in overrides.items() if v is not None})
    return normalize_config(config)


def build_model(
    spec: str | Mapping | None = None,
    *,
    pretrained: bool = False,
    pretrained_files: Mapping[str, str] | None = None,
    **overrides,
):
    """Build a :class:`mmfuse.FusionModel` from a preset name or a config, with overrides.

    Overrides are config fields: ``primary``, ``auxiliary``, ``fusion``, ``fusion_options``,
    ``fusion_stages`` (primary stage indices or ``"all"``), ``tasks`` (a preset name or task specs),
    ``img_size``, ``head_dropout``... ``pretrained=True`` loads timm's ImageNet weights through the Hub;
    ``pretrained_files={"primary": path}`` loads a local timm checkpoint instead, for offline machines.
    """
    from mmfuse.model import FusionModel

    return FusionModel(
        resolve_config(spec, **overrides), pretrained=pretrained, pretrained_files=pretrained_files
    )
