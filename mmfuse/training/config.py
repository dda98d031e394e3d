"""Run configuration: a YAML file with four sections, filled with defaults and checked up front.

A typo in a key fails before any data is read, naming the key and the valid ones, so a 250-epoch run
never dies at the end on a misspelt ``weight_search`` option. :func:`resolve` returns plain data, which
is what ``RUN/config.yaml`` stores and what ``--resume`` compares against.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from pathlib import Path

import yaml

from mmfuse.errors import ConfigError, DataError
from mmfuse.fileio import atomic_write_text
from mmfuse.limits import MAX_RESAMPLES, MAX_SEED, MIN_WEIGHT_STEP
from mmfuse.metrics_layout import HEADLINE_METRICS
from mmfuse.runtime.data import dataset_options
from mmfuse.yamlio import boolean_hint, load_yaml

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
    ("evaluation", "weight_search", "combine"): ("probabilities", "logits"),
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
            raise ConfigError(
                f"unknown config key {where!r}; valid keys in {'.'.join(path)}: {sorted(defaults)}"
            )
        if key not in defaults and not path:
            raise ConfigError(f"unknown config section {key!r}; valid sections: {sorted(defaults)}")
        if isinstance(defaults.get(key), dict) and value is None:
            continue  # `model:` with nothing under it: that section's defaults
        if isinstance(defaults.get(key), dict):
            if not isinstance(value, Mapping):
                raise ConfigError(f"config key {'.'.join((*path, key))!r} must be a mapping, got {value!r}")
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


def _check(config: dict) -> None:
    for path in _boolean_paths(DEFAULTS):
        hint = boolean_hint(_get(config, *path))
        if hint:
            raise ConfigError(f"{'.'.join(path)} must be true or false, got {_get(config, *path)!r}{hint}")
    for path, choices in _CHOICES.items():
        value = _get(config, *path)
        if value not in choices:
            raise ConfigError(f"{'.'.join(path)} must be one of {list(choices)}, got {value!r}")
    train = config["train"]
    for key in ("epochs", "batch_size", "checkpoint_every", "keep_checkpoints"):
        if not isinstance(train[key], int) or train[key] < 1:
            raise ConfigError(f"train.{key} must be a positive integer, got {train[key]!r}")
    threads = train["threads"]
    if threads != "auto" and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ConfigError(f"train.threads must be 'auto' or a positive integer, got {threads!r}")
    swa = train["swa"]
    if not isinstance(swa["epochs"], int) or not 0 <= swa["epochs"] <= train["epochs"]:
        raise ConfigError(f"train.swa.epochs must be an integer in [0, train.epochs], got {swa['epochs']!r}")
    anneal = swa["anneal_epochs"]
    if isinstance(anneal, bool) or not isinstance(anneal, int) or not 0 <= anneal < 2**31:
        raise ConfigError(f"train.swa.anneal_epochs must be a non-negative integer, got {anneal!r}")
    for key, low, optional in (
        ("lr", 0.0, False),
        ("weight_decay", 0.0, False),
        ("min_lr_ratio", 0.0, False),
        ("modality_dropout", 0.0, False),
        ("grad_clip", 0.0, True),
    ):
        value = train[key]
        if value is None and optional:
            continue
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
            or value < low
        ):
            raise ConfigError(f"train.{key} must be a finite number >= {low:g}, got {value!r}")
    from mmfuse.tracking import check_track

    train["track"] = check_track(train["track"])
    for key in ("warmup_epochs", "seed", "log_every", "validate_every"):
        if isinstance(train[key], bool) or not isinstance(train[key], int) or not 0 <= train[key] < 2**32:
            raise ConfigError(f"train.{key} must be an integer in [0, 2**32), got {train[key]!r}")
    if train["swa"]["lr"] is not None and (
        isinstance(train["swa"]["lr"], bool)
        or not isinstance(train["swa"]["lr"], (int, float))
        or not 0 < train["swa"]["lr"] < math.inf
    ):
        raise ConfigError(f"train.swa.lr must be a positive number or null, got {train['swa']['lr']!r}")
    if not isinstance(train["device"], str) or not train["device"]:
        raise ConfigError(
            f"train.device must be 'auto', 'cpu', 'cuda' or 'cuda:<index>', got {train['device']!r}"
        )
    batch = config["evaluation"]["batch_size"]
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ConfigError(f"evaluation.batch_size must be a positive integer, got {batch!r}")
    data = config["data"]
    from mmfuse.data.formats import UnknownFormatError, get_format
    from mmfuse.registry import list_dataset_formats

    try:
        get_format(data.get("format"))
    except UnknownFormatError:
        raise ConfigError(
            f"data.format must be a registered dataset format ({', '.join(list_dataset_formats())}), "
            f"got {data.get('format')!r}"
        ) from None
    workers = data.get("num_workers")
    if isinstance(workers, bool) or not isinstance(workers, int) or not 0 <= workers <= 256:
        raise ConfigError(f"data.num_workers must be an integer in [0, 256], got {workers!r}")
    if not 0.0 <= float(train["modality_dropout"]) < 1.0:
        raise ConfigError(f"train.modality_dropout must be in [0, 1), got {train['modality_dropout']!r}")
    if float(train["lr"]) <= 0:
        raise ConfigError(f"train.lr must be positive, got {train['lr']!r}")
    step = float(config["evaluation"]["weight_search"]["step"])
    if not MIN_WEIGHT_STEP <= step <= 1 or abs(round(1 / step) * step - 1) > 1e-9:
        raise ConfigError(
            f"evaluation.weight_search.step must divide 1 evenly and be at least {MIN_WEIGHT_STEP} "
            f"(0.05, 0.1, 0.25...), got {step!r}"
        )
    search = config["evaluation"]["weight_search"]
    search_num = search["search_num"]
    if isinstance(search_num, bool) or not isinstance(search_num, int) or search_num < 1:
        raise ConfigError(
            f"evaluation.weight_search.search_num must be a positive integer, got {search_num!r}"
        )
    if search["method"] == "fusionm4net" and config["evaluation"]["temperature_scaling"]:
        raise ConfigError(
            "evaluation.weight_search.method: fusionm4net mixes raw logits, as the reference does; "
            "set evaluation.temperature_scaling: false"
        )
    bootstrap = config["evaluation"]["bootstrap"]
    for key, high in (("resamples", MAX_RESAMPLES), ("seed", MAX_SEED)):
        value = bootstrap[key]
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= high:
            raise ConfigError(f"evaluation.bootstrap.{key} must be an integer in [0, {high}], got {value!r}")
    if not 0 < float(bootstrap["level"]) < 1:
        raise ConfigError(f"evaluation.bootstrap.level must lie in (0, 1), got {bootstrap['level']!r}")
    if data.get("root") is None:
        raise ConfigError("data.root is required: the dataset directory (or pass --data ROOT)")
    for key in ("train_split", "val_split"):
        if not isinstance(data.get(key), str) or not data[key]:
            raise ConfigError(f"data.{key} must name a split of the dataset, got {data.get(key)!r}")
    from mmfuse.data.build import check_data_options

    try:
        check_data_options(dataset_options(config))
    except DataError as exc:
        raise ConfigError(str(exc)) from None


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
    if path.is_dir():
        raise ConfigError(f"{path} is a directory; give the run config file (YAML)")
    try:
        data = load_yaml(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise FileNotFoundError(f"config file not found: {path}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {' '.join(str(exc).split())}") from None
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply to be a run config") from None
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path}: a run config must be a mapping of sections, got {type(data).__name__}")
    try:
        return resolve(data, **overrides)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except (TypeError, ValueError, KeyError, AttributeError, OverflowError, RecursionError) as exc:
        raise ConfigError(
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
