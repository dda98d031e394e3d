"""Run configuration: a YAML file with four sections, filled with defaults and checked up front.

A typo in a key fails before any data is read, naming the key and the valid ones, so a 250-epoch run
never dies at the end on a misspelt ``weight_search`` option. :func:`resolve` returns plain data, which
is what ``RUN/config.yaml`` stores and what ``--resume`` compares against.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path

import yaml

from mmfuse.errors import DataError, RunConfigError
from mmfuse.fileio import atomic_write_text
from mmfuse.head_mixing import HEAD_COMBINE_MODES
from mmfuse.limits import MAX_RESAMPLES, MAX_SEED, MIN_WEIGHT_STEP
from mmfuse.metrics_layout import HEADLINE_METRICS
from mmfuse.rules import Rule, integer_in, is_finite_number, is_integer, number_at_least, one_of
from mmfuse.runtime.data import dataset_options
from mmfuse.yamlio import boolean_hint, read_yaml_file

# Paper recipe (section 4.1) where the paper states it; our choices, documented in docs/training.md, elsewhere.
DEFAULTS: dict = {
    "model": {"preset": "ammfm-swin", "pretrained": False},
    "data": {
        "format": "derm7pt",
        "root": None,
        "train_split": "train",
        "val_split": "valid",
        "num_workers": 0,
        "device_cache": False,
        "metadata": False,  # true (the format's fields) or a list: patient metadata as a third input
    },
    "train": {
        "epochs": 250,
        "batch_size": 24,
        "lr": 1.0e-4,
        "weight_decay": 0.0,
        "schedule": "cosine",
        "min_lr_ratio": 0.1,
        "warmup_epochs": 0,
        "swa": {"epochs": 50, "lr": None, "anneal_epochs": 5},
        "modality_dropout": 0.0,
        # Class imbalance (docs/training.md): "balanced" loss weights, a "balanced" sampler.
        "class_weights": None,
        "sampler": "shuffle",
        "grad_clip": None,
        "amp": "bf16",
        "channels_last": True,
        "compile": False,
        "device": "auto",
        "threads": "auto",
        "seed": 0,
        "keep_checkpoints": 1,
        "checkpoint_every": 1,
        "log_every": 10,
        # Experiment trackers (plugins: tensorboard, mlflow, wandb...); log.csv is written regardless.
        "track": ["tensorboard"],
        # Every N epochs, each head's metrics on data.val_split for the trackers (0: never; no TTA).
        "validate_every": 1,
    },
    "evaluation": {
        "tta": True,
        # method "simplex" (ours: a grid at `step`, mixing by `combine`: "probabilities", Eq. 4, or "logits") or
        # "fusionm4net" (the reference's own candidates, `search_num` and `schedule`, avg ACC of raw logits; the
        # paper's: examples/configs/paper.yaml)
        "weight_search": {
            "method": "simplex",
            "step": 0.05,
            "objective": "avg_auc",
            "combine": "probabilities",
            "search_num": 20,
            "schedule": "linear",
        },
        "splits": ["valid", "test"],
        "plots": True,
        "batch_size": 64,
        # Percentile intervals of every reported metric over resampled test cases (0 resamples: none).
        "bootstrap": {"resamples": 1000, "seed": 0, "level": 0.95},
        # Fit one temperature per head and task on the validation split; stored in the model's config.json.
        "temperature_scaling": True,
        # null, "svm" or "logistic": FusionM4Net's second stage (per-task classifier on the final probabilities
        # and the metadata), fitted on the validation split; its report goes to second_stage.json.
        "second_stage": None,
    },
}

# Sections whose keys are open: model overrides go to mmfuse.build_model, data keys to the dataset builder.
_OPEN_SECTIONS = {"model", "data"}

_CHOICES = {
    ("train", "schedule"): ("constant", "cosine"),
    ("train", "amp"): ("bf16", "fp16", "none"),
    ("train", "class_weights"): (None, "balanced"),
    ("train", "sampler"): ("shuffle", "balanced"),
    ("evaluation", "weight_search", "objective"): HEADLINE_METRICS,
    ("evaluation", "weight_search", "combine"): HEAD_COMBINE_MODES,
    ("evaluation", "weight_search", "method"): ("simplex", "fusionm4net"),
    ("evaluation", "weight_search", "schedule"): ("linear", "cosine"),
    ("evaluation", "second_stage"): (None, "svm", "logistic"),
}


def _merge(defaults: Mapping, given: Mapping, path: tuple[str, ...]) -> dict:
    merged = copy.deepcopy(dict(defaults))
    open_section = len(path) == 1 and path[0] in _OPEN_SECTIONS
    for key, value in given.items():
        if key not in defaults and not open_section and path:
            where = ".".join((*path, key))
            raise RunConfigError(
                f"unknown config key {where!r}; valid keys in {'.'.join(path)}: {sorted(defaults)}"
            )
        if key not in defaults and not path:
            raise RunConfigError(f"unknown config section {key!r}; valid sections: {sorted(defaults)}")
        if isinstance(defaults.get(key), dict) and value is None:
            continue  # `model:` with nothing under it: that section's defaults
        if isinstance(defaults.get(key), dict):
            if not isinstance(value, Mapping):
                raise RunConfigError(
                    f"config key {'.'.join((*path, key))!r} must be a mapping, got {value!r}"
                )
            merged[key] = _merge(defaults[key], value, (*path, key))
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _get(config: Mapping, *path: str):
    for key in path:
        config = config[key]
    return config


def _boolean_paths(defaults: Mapping, path: tuple[str, ...] = ()):
    for key, value in defaults.items():
        if isinstance(value, dict):
            yield from _boolean_paths(value, (*path, key))
        elif isinstance(value, bool):
            yield (*path, key)


def _yaml_boolean(name: str, value: object) -> str | None:
    """YAML 1.1's ``yes``/``no``/``on``/``off`` are strings in the YAML 1.2 mmfuse reads: say so."""
    hint = boolean_hint(value)
    return f"{name} must be true or false, got {value!r}{hint}" if hint else None


def _threads(name: str, value: object) -> str | None:
    if value == "auto" or (is_integer(value) and value >= 1):
        return None
    return f"{name} must be 'auto' or a positive integer, got {value!r}"


def _learning_rate(name: str, value: object) -> str | None:
    problem = number_at_least(0.0)(name, value)
    return problem or (None if value > 0 else f"{name} must be positive, got {value!r}")


def _dropout(name: str, value: object) -> str | None:
    problem = number_at_least(0.0)(name, value)
    return problem or (None if value < 1 else f"{name} must be in [0, 1), got {value!r}")


def _swa_lr(name: str, value: object) -> str | None:
    if value is None or (is_finite_number(value) and value > 0):
        return None
    return f"{name} must be a positive number or null, got {value!r}"


def _device(name: str, value: object) -> str | None:
    if isinstance(value, str) and value:
        return None
    return f"{name} must be 'auto', 'cpu', 'cuda' or 'cuda:<index>', got {value!r}"


def _weight_step(name: str, value: object) -> str | None:
    step = float(value)
    if MIN_WEIGHT_STEP <= step <= 1 and abs(round(1 / step) * step - 1) <= 1e-9:
        return None
    return f"{name} must divide 1 evenly and be at least {MIN_WEIGHT_STEP} (0.05, 0.1, 0.25...), got {step!r}"


def _level(name: str, value: object) -> str | None:
    return None if 0 < float(value) < 1 else f"{name} must lie in (0, 1), got {value!r}"


def _split_name(name: str, value: object) -> str | None:
    return (
        None
        if isinstance(value, str) and value
        else f"{name} must name a split of the dataset, got {value!r}"
    )


_UINT32 = integer_in(0, 2**32 - 1, says="an integer in [0, 2**32)")

# One rule per value-carrying key of the run config, checked in this order (mmfuse.rules); what depends on
# several keys or on the registries is checked after them, in _check_together.
VALUE_RULES: dict[tuple[str, ...], Rule] = {
    **dict.fromkeys(_boolean_paths(DEFAULTS), _yaml_boolean),
    **{path: one_of(choices) for path, choices in _CHOICES.items()},
    **dict.fromkeys(
        [("train", k) for k in ("epochs", "batch_size", "checkpoint_every", "keep_checkpoints")],
        integer_in(1),
    ),
    ("train", "threads"): _threads,
    ("train", "swa", "anneal_epochs"): integer_in(0, 2**31 - 1, says="a non-negative integer"),
    ("train", "lr"): _learning_rate,
    ("train", "weight_decay"): number_at_least(0.0),
    ("train", "min_lr_ratio"): number_at_least(0.0),
    ("train", "modality_dropout"): _dropout,
    ("train", "grad_clip"): number_at_least(0.0, optional=True),
    **dict.fromkeys(
        [("train", k) for k in ("warmup_epochs", "seed", "log_every", "validate_every")], _UINT32
    ),
    ("train", "swa", "lr"): _swa_lr,
    ("train", "device"): _device,
    ("evaluation", "batch_size"): integer_in(1),
    ("data", "num_workers"): integer_in(0, 256),
    ("evaluation", "weight_search", "step"): _weight_step,
    ("evaluation", "weight_search", "search_num"): integer_in(1),
    ("evaluation", "bootstrap", "resamples"): integer_in(0, MAX_RESAMPLES),
    ("evaluation", "bootstrap", "seed"): integer_in(0, MAX_SEED),
    ("evaluation", "bootstrap", "level"): _level,
    ("data", "train_split"): _split_name,
    ("data", "val_split"): _split_name,
}


def _check(config: dict) -> None:
    """Raise :class:`RunConfigError` naming the first value out of range (``config`` is merged with the defaults)."""
    for path, rule in VALUE_RULES.items():
        problem = rule(".".join(path), _get(config, *path))
        if problem:
            raise RunConfigError(problem)
    _check_together(config)


def _check_together(config: dict) -> None:
    """What one rule cannot see: values checked against each other or against the registries."""
    from mmfuse.data.build import check_data_options
    from mmfuse.data.formats import UnknownFormatError, get_format
    from mmfuse.registry import list_dataset_formats
    from mmfuse.tracking import check_track

    train, data, evaluation = config["train"], config["data"], config["evaluation"]
    swa_epochs = train["swa"]["epochs"]
    if not is_integer(swa_epochs) or not 0 <= swa_epochs <= train["epochs"]:
        raise RunConfigError(f"train.swa.epochs must be an integer in [0, train.epochs], got {swa_epochs!r}")
    train["track"] = check_track(train["track"])
    try:
        get_format(data.get("format"))
    except UnknownFormatError:
        raise RunConfigError(
            f"data.format must be a registered dataset format ({', '.join(list_dataset_formats())}), "
            f"got {data.get('format')!r}"
        ) from None
    if evaluation["weight_search"]["method"] == "fusionm4net" and evaluation["temperature_scaling"]:
        raise RunConfigError(
            "evaluation.weight_search.method: fusionm4net mixes raw logits, as the reference does; "
            "set evaluation.temperature_scaling: false"
        )
    if data.get("root") is None:
        raise RunConfigError("data.root is required: the dataset directory (or pass --data ROOT)")
    try:
        check_data_options(dataset_options(config))
    except DataError as exc:
        raise RunConfigError(str(exc)) from None


def _scale_swa(merged: dict, epochs: object) -> dict:
    """An ``epochs`` override keeps SWA's share of the run (10 of 40 -> 1 of 4) unless SWA is overridden too."""
    train = merged["train"]
    if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1:
        return merged  # _check names the bad value
    before, swa = train["epochs"], train["swa"]["epochs"]
    if isinstance(before, int) and before > 0 and isinstance(swa, int):
        train = {**train, "swa": {**train["swa"], "epochs": swa * epochs // before}}
    return {**merged, "train": train}


def resolve(config: Mapping | None = None, **overrides: Mapping) -> dict:
    """Defaults, then ``config``, then per-section ``overrides`` (e.g. ``train={"epochs": 2}``); validated.

    Overriding ``train.epochs`` alone scales ``train.swa.epochs`` with it, so a shortened recipe keeps
    averaging over the same share of the run (paper: the last 50 of 250 epochs, so 2 of 10).
    """
    merged = _merge(DEFAULTS, dict(config or {}), ())
    for section, values in overrides.items():
        values = dict(values)
        if section == "train" and "epochs" in values and "epochs" not in (values.get("swa") or {}):
            merged = _scale_swa(merged, values["epochs"])
        merged = _merge(DEFAULTS, {**merged, section: {**merged.get(section, {}), **values}}, ())
    _check(merged)
    return merged


def load_config(path: str | Path, **overrides: Mapping) -> dict:
    """Read a YAML run configuration and :func:`resolve` it; errors name the file."""
    path = Path(path)
    data = read_yaml_file(path, "run config", RunConfigError) or {}
    if not isinstance(data, Mapping):
        raise RunConfigError(f"{path}: a run config must be a mapping of sections, got {type(data).__name__}")
    try:
        return resolve(data, **overrides)
    except RunConfigError as exc:
        raise RunConfigError(f"{path}: {exc}") from None
    except (TypeError, ValueError, KeyError, AttributeError, OverflowError, RecursionError) as exc:
        raise RunConfigError(
            f"{path}: a value has the wrong type or form ({type(exc).__name__}: {exc})"
        ) from None


def _path_keys() -> list[tuple[str, str]]:
    """Path-valued keys: made absolute when a run starts, so RUN/config.yaml works from any directory."""
    from mmfuse.data.formats import path_option_keys

    return [("data", "root"), *(("data", key) for key in sorted(path_option_keys()))]


def absolute_paths(config: Mapping) -> dict:
    """``config`` with its dataset paths and ``model.pretrained_files`` resolved against the working directory."""
    config = copy.deepcopy(dict(config))
    for section, key in _path_keys():
        value = config.get(section, {}).get(key)
        if isinstance(value, (str, Path)) and value:
            config[section][key] = str(Path(value).expanduser().resolve())
    source = config.get("model", {}).get("from_pretrained")
    if isinstance(source, str) and source and Path(source).expanduser().exists():
        config["model"]["from_pretrained"] = str(Path(source).expanduser().resolve())  # a local run or model
    files = config.get("model", {}).get("pretrained_files")
    if isinstance(files, Mapping):
        config["model"]["pretrained_files"] = {
            branch: str(Path(path).expanduser().resolve()) for branch, path in files.items()
        }
    return config


def dump_config(config: Mapping, path: str | Path) -> None:
    atomic_write_text(path, yaml.safe_dump(dict(config), sort_keys=False))


def model_spec(config: Mapping) -> tuple[str | dict, bool, dict]:
    """``(preset_or_config, pretrained, overrides)`` for :func:`mmfuse.build_model` from the model section."""
    section = dict(config["model"])
    pretrained = bool(section.pop("pretrained", False))
    pretrained_files = section.pop("pretrained_files", None)
    preset = section.pop("preset", None)
    extra = {"pretrained_files": pretrained_files} if pretrained_files else {}
    return preset, pretrained, {**section, **extra}
