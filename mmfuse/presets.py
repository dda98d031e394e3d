"""Model configuration as plain data: the fields and their defaults, the named presets, validation.

A configuration is plain data. Presets name the paper's setups and the peers' (every one registered
through the ``register_presets`` hook: the paper's by the built-in ``mmfuse_plugins.ammfm_presets``,
which imports the backbone names below); keyword overrides change any field, so
``build_model("ammfm-swin", fusion="bab")`` is the AFF+BAB row of Table 9. This module sits below the
model: it never builds one (:mod:`mmfuse.factory` does).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping

from mmfuse.errors import ModelConfigError, UsageError
from mmfuse.head_mixing import HEAD_COMBINE_MODES, HEADS
from mmfuse.limits import MAX_CLASSES, MAX_IMG_SIZE, MAX_METADATA_WIDTH, MAX_OPTION_VALUE, MAX_TASKS
from mmfuse.metadata import MetadataEncoding
from mmfuse.registry import PRESETS as REGISTERED_PRESETS
from mmfuse.rules import Rule
from mmfuse.rules import is_finite_number as _finite_number
from mmfuse.tasks import resolve_tasks, tasks_to_data

__all__ = [
    "CONVNEXT",
    "DEFAULT_PRESET",
    "MOBILENET",
    "RESNET",
    "SWIN",
    "list_presets",
    "preset_config",
    "resolve_config",
]

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
    "fusion_stages": None,  # None: the paper's, after the first three stages (mmfuse.fusion_stages.default_fusion_stages)
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
    # 2: attention blocks default to exact Eq. 1. Configs saved without this field (version 1) meant keys
    # pooled to 196 positions; upgrade_config() restores that when such a config.json is loaded.
    "config_version": 2,
    # The branches the model has: both (AMMFM), or one alone (the single-modality rows of Tables 7, 8, 10).
    "modalities": ["primary", "auxiliary"],
    # How predict() mixes the heads with head_weights: "probabilities" (Eq. 4) or "logits" (FusionM4Net's
    # search, which the paper follows); written by the weight search that chose the weights.
    "head_combine": "probabilities",
}

CONFIG_VERSION = 2

# Config fields naming a registered component, with the registry kind they are looked up in.
COMPONENT_FIELDS: dict[str, str] = {
    "primary": "encoder",
    "auxiliary": "encoder",
    "fusion": "fusion",
    "head": "head",
    "combiner": "combiner",
    "metadata_encoder": "metadata encoder",
}

# build_model() with no name builds the paper's model: a name-less call is what a user reproducing
# the paper types first, and the fast variant is one word away (docs/architecture.md).
DEFAULT_PRESET = "ammfm-swin"


def list_presets(pattern: str | None = None) -> list[str]:
    """Every registered preset (the paper's, the peers', third parties'), optionally glob-filtered."""
    return REGISTERED_PRESETS.names(pattern)


def preset_config(name: str) -> dict:
    """A copy of the plain-data fields of preset ``name``."""
    if name not in REGISTERED_PRESETS:
        raise UsageError(f"unknown preset {name!r}; available: {list_presets()}")
    return copy.deepcopy(dict(REGISTERED_PRESETS.entry(name).obj))


def normalize_config(config: Mapping) -> dict:
    """Fill defaults and validate field names; the result is JSON-serialisable plain data."""
    unknown = set(config) - set(DEFAULTS) - {"preset"}
    if unknown:
        raise UsageError(f"unknown model config fields {sorted(unknown)}; known fields: {sorted(DEFAULTS)}")
    merged = copy.deepcopy(DEFAULTS)
    merged.update(copy.deepcopy(dict(config)))
    merged["tasks"] = tasks_to_data(resolve_tasks(merged["tasks"]))
    for channels in ("mean", "std"):
        problem = _check_channels(channels, merged[channels], positive=channels == "std")
        if problem:
            raise ModelConfigError(f"invalid model config: {problem}")
        merged[channels] = [float(v) for v in merged[channels]]
    merged["fusion_stage_options"] = {str(k): dict(v) for k, v in merged["fusion_stage_options"].items()}
    if isinstance(merged["metadata"], MetadataEncoding):
        merged["metadata"] = merged["metadata"].to_dict()
    modalities = merged["modalities"]
    if isinstance(modalities, str):
        modalities = [modalities]
    if (
        not modalities
        or any(m not in ("primary", "auxiliary") for m in modalities)
        or len(set(modalities)) != len(modalities)
    ):
        raise UsageError(
            f"modalities must be ['primary', 'auxiliary'], ['primary'] or ['auxiliary'], got {merged['modalities']!r}"
        )
    merged["modalities"] = [m for m in ("primary", "auxiliary") if m in modalities]
    if merged["head_combine"] not in HEAD_COMBINE_MODES:
        raise UsageError(f"head_combine must be 'probabilities' or 'logits', got {merged['head_combine']!r}")
    if int(merged["config_version"]) != CONFIG_VERSION:
        raise UsageError(
            f"config_version {merged['config_version']!r} is not {CONFIG_VERSION}: pass a saved config through "
            "mmfuse.presets.upgrade_config first"
        )
    if isinstance(merged["fusion_stages"], (list, tuple)):
        merged["fusion_stages"] = [int(s) for s in merged["fusion_stages"]]
    check_values(merged)
    return merged


def _check_channels(field: str, value: object, *, positive: bool) -> str | None:
    if not isinstance(value, (list, tuple)) or len(value) != 3:
        return f"{field} must list 3 numbers (one per RGB channel), got {value!r}"
    if not all(_finite_number(v) and (v > 0 if positive else True) for v in value):
        kind = "positive finite" if positive else "finite"
        return f"{field} must hold 3 {kind} numbers, got {value!r}"
    return None


def _check_head_weights(field: str, value: object) -> str | None:
    if not isinstance(value, Mapping) or set(value) != set(HEADS):
        return f"{field} must map exactly {list(HEADS)} to weights, got {value!r}"
    weights = [value[h] for h in HEADS]
    if not all(_finite_number(w) and w >= 0 for w in weights) or abs(sum(weights) - 1.0) > 1e-4:
        return f"{field} must be 3 non-negative finite numbers summing to 1, got {dict(value)!r}"
    return None


def _check_fraction(field: str, value: object) -> str | None:
    if not _finite_number(value) or not 0 <= value < 1:
        return f"{field} must be a number in [0, 1), got {value!r}"
    return None


def _check_img_size(field: str, value: object) -> str | None:
    if value is not None and (
        not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_IMG_SIZE
    ):
        return f"{field} must be an integer from 1 to {MAX_IMG_SIZE} (pixels a side), got {value!r}"
    return None


def _check_bool(field: str, value: object) -> str | None:
    return None if isinstance(value, bool) else f"{field} must be true or false, got {value!r}"


def _check_options(field: str, value: object) -> str | None:
    """An object of options whose numbers (at any depth) are finite and at most
    :data:`~mmfuse.limits.MAX_OPTION_VALUE` in size: widths, heads and token counts size the layers."""
    if not isinstance(value, Mapping):
        return f"{field} must be an object of options, got {value!r}"
    for key, number in _numbers(value, field):
        if not math.isfinite(number) or abs(number) > MAX_OPTION_VALUE:
            return f"{key} must be a finite number of at most {MAX_OPTION_VALUE} in size, got {number!r}"
    return None


def _numbers(value: object, where: str):
    """``(key path, number)`` for every number inside nested mappings and lists (booleans excluded)."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield from _numbers(item, f"{where}.{key}")
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from _numbers(item, f"{where}[{index}]")
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        yield where, value


def _check_tasks(field: str, value: object) -> str | None:
    """At most :data:`~mmfuse.limits.MAX_TASKS` tasks of :data:`~mmfuse.limits.MAX_CLASSES` classes each
    (their shapes were checked by :func:`~mmfuse.tasks.resolve_tasks`)."""
    if len(value) > MAX_TASKS:
        return f"{field} lists {len(value)} tasks; at most {MAX_TASKS}"
    for task in value:
        if len(task["classes"]) > MAX_CLASSES:
            return f"{field}: task {task['name']!r} has {len(task['classes'])} classes; at most {MAX_CLASSES}"
    return None


def _check_metadata(field: str, value: object) -> str | None:
    """A fitted encoding's width (values per case) is at most :data:`~mmfuse.limits.MAX_METADATA_WIDTH`."""
    if value is None:
        return None
    fields = value.get("fields") if isinstance(value, Mapping) else None
    if not isinstance(fields, (list, tuple)) or not all(isinstance(f, Mapping) for f in fields):
        return f"{field} must be a fitted metadata encoding (an object with a list of fields), got {value!r}"
    width = sum(len(f.get("categories") or ()) if f.get("kind") == "categorical" else 1 for f in fields)
    if width > MAX_METADATA_WIDTH:
        return f"{field} encodes {width} values per case; at most {MAX_METADATA_WIDTH}"
    return None


# One rule per value-carrying field: a new field adds its rule here (names and tasks are checked elsewhere:
# registry lookups and resolve_tasks). Each rule returns the problem, or None.
VALUE_RULES: dict[str, Rule] = {
    "img_size": _check_img_size,
    "tasks": _check_tasks,
    "metadata": _check_metadata,
    "mean": lambda f, v: _check_channels(f, v, positive=False),
    "std": lambda f, v: _check_channels(f, v, positive=True),
    "head_weights": _check_head_weights,
    "head_dropout": _check_fraction,
    "share_encoder": _check_bool,
    **{f"{field}_options": _check_options for field in COMPONENT_FIELDS},
    "fusion_stage_options": _check_options,
}


def check_values(config: Mapping) -> None:
    """Raise :class:`ModelConfigError` naming every field whose value is out of range.

    A hand-edited or damaged config.json must fail here: a zero ``std`` or a negative head weight
    otherwise yields NaN or negative "probabilities" that every later step reports as results.
    """
    problems = [
        p for field, rule in VALUE_RULES.items() if field in config and (p := rule(field, config[field]))
    ]
    if problems:
        raise ModelConfigError("invalid model config: " + "; ".join(problems))


# Built-in attention blocks whose default changed in config version 2 (pooled keys -> exact Eq. 1).
_VERSION_1_POOLED_FUSIONS = ("aab", "bab")


def upgrade_config(config: Mapping) -> dict:
    """A saved config in its current form, building the architecture it was trained with.

    Version 1 (no ``config_version`` field) built ``aab``/``bab`` with keys pooled to 196 positions by
    default; that default is written out explicitly so the loaded model matches its weights' training.
    """
    config = copy.deepcopy(dict(config))
    version = int(config.get("config_version", 1))
    if version > CONFIG_VERSION:
        raise UsageError(
            f"config_version {version} is newer than this mmfuse understands ({CONFIG_VERSION}); upgrade mmfuse"
        )
    if version == 1:
        if config.get("fusion") in _VERSION_1_POOLED_FUSIONS:
            config["fusion_options"] = {"max_key_tokens": 196, **dict(config.get("fusion_options") or {})}
    config["config_version"] = CONFIG_VERSION
    return config


def resolve_config(spec: str | Mapping | None = None, **overrides) -> dict:
    """A preset name or a config mapping, with keyword overrides applied (``None`` values ignored)."""
    if spec is None:
        spec = DEFAULT_PRESET
    if isinstance(spec, str):
        config = {"preset": spec, **preset_config(spec)}
    else:
        config = dict(spec)
    config.update({k: v for k, v in overrides.items() if v is not None})
    return normalize_config(config)
