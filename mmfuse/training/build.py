"""What a run trains: the model its config describes, with the dataset's tasks when the config names none.

Pure functions of the run config, so the trainer only trains; and the one old-run migration: a
checkpoint written before the paper presets moved their fusion blocks names the preset that now builds
its architecture.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from mmfuse.data.build import fit_metadata_encoding
from mmfuse.errors import (
    BUILD_ERRORS,
    CheckpointError,
    MmfuseError,
    RunConfigError,
    describe_build_error,
    one_line,
)
from mmfuse.factory import build_model
from mmfuse.presets import list_presets
from mmfuse.runs import CONFIG_FILE
from mmfuse.training.config import dataset_options, model_spec


def with_data_tasks(config: Mapping) -> dict:
    """``config`` with ``model.tasks`` set to the dataset's when it names none.

    The preset's tasks (Derm7pt's for the paper presets) would not fit another dataset's labels, and
    RUN/config.yaml then says exactly what was trained, so ``--resume`` rebuilds the same heads.
    """
    if config["model"].get("tasks") is not None:
        return dict(config)
    from mmfuse.data import load_table
    from mmfuse.tasks import tasks_to_data

    table = load_table(dataset_options(config))
    return {**config, "model": {**config["model"], "tasks": tasks_to_data(table.tasks)}}


def build_run_model(config: Mapping, device: torch.device, *, announce: bool = True) -> nn.Module:
    """The run's model on ``device``, ready to train; what timm or torch reject becomes a :class:`RunConfigError`.

    ``announce`` prints the fitted metadata encoding's summary (rank 0 of a torchrun job).
    """
    try:
        return _model(config, announce=announce).to(device)
    except MmfuseError:
        raise
    except BUILD_ERRORS as exc:
        # timm and torch reject some encoder options with their own exceptions.
        raise RunConfigError(
            f"the model section cannot be built ({describe_build_error(exc)}); check its *_options "
            "against the component"
        ) from None


def _model(config: Mapping, *, announce: bool) -> nn.Module:
    """The preset with its overrides, or (``model.from_pretrained``) a saved model with new heads if needed."""
    preset, pretrained, overrides = model_spec(config)
    source = overrides.pop("from_pretrained", None)
    if source is None:
        if config["data"].get("metadata"):
            # Fitted on the training split only; the model keeps it, so evaluation encodes the same way.
            split = config["data"]["train_split"]
            encoding, report = fit_metadata_encoding(dataset_options(config), split)
            overrides["metadata"] = encoding.to_dict()
            if announce:
                print(f"{split} split {report.describe()}", file=sys.stderr)
        return build_model(preset, pretrained=pretrained, **overrides)
    extra = sorted(set(overrides) - {"tasks"})
    if extra:
        raise RunConfigError(
            f"model.from_pretrained ({source!r}) brings its own architecture; remove model.{', model.'.join(extra)} "
            "(only model.tasks may be given: new heads for another dataset)"
        )
    from mmfuse.hub import from_pretrained
    from mmfuse.runs import run_model_dir

    return from_pretrained(run_model_dir(source) or source, tasks=overrides.get("tasks")).train()


def preset_that_fits(config: Mapping, weights: Mapping[str, torch.Tensor]) -> str | None:
    """``<preset>-fast`` when it, not the run's paper preset, has exactly the checkpoint's tensors.

    A run started before the paper presets moved their fusion blocks (docs/architecture.md, "Where the
    paper's blocks sit") names the preset that then built today's ``-fast`` configuration.
    """
    preset, _, overrides = model_spec(config)
    fast = f"{preset}-fast" if isinstance(preset, str) else None
    if fast is None or fast not in list_presets():
        return None
    overrides.pop("pretrained_files", None)
    try:
        candidate = build_model(fast, pretrained=False, **overrides).state_dict()
    except (MmfuseError, *BUILD_ERRORS):  # only a hint: a model that cannot be built is not the answer
        return None
    fits = candidate.keys() == weights.keys() and all(
        candidate[k].shape == weights[k].shape for k in candidate
    )
    return fast if fits else None


def misfit_checkpoint_error(
    path: Path, exc: BaseException, config: Mapping, run_dir: Path, weights: Mapping[str, torch.Tensor]
) -> CheckpointError:
    """Why checkpoint ``path`` (``weights``: its model tensors) cannot be restored into this run, and the fix."""
    renamed = preset_that_fits(config, weights)
    if renamed is not None:
        return CheckpointError(
            f"checkpoint {path} was trained with the architecture now named {renamed!r}: mmfuse "
            f"versions before config_version 2 built it under the name {config['model']['preset']!r}, "
            "which now builds the paper's model. Set model.preset to "
            f"{renamed!r} in {run_dir / CONFIG_FILE} (and in your config) and resume again"
        )
    return CheckpointError(
        f"checkpoint {path} does not fit this run ({one_line(exc)}); it is damaged, or "
        "was written by another model or version. Start a new run, or restore the checkpoint"
    )
