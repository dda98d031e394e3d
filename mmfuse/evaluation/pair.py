"""Predict one case from image files: per-task probabilities, predicted classes, dataset-specific scores."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import torch

from mmfuse.errors import UsageError
from mmfuse.evaluation.derm7pt import seven_point


def load_image(path: str | os.PathLike, data_config: Mapping) -> torch.Tensor:
    """``[1, 3, S, S]``: the model's preprocessing (:func:`mmfuse.data.transforms.resolve_data_config`)."""
    from mmfuse.data.transforms import create_transform

    return create_transform(**data_config)(path).unsqueeze(0)


def predict_pair(
    model,
    primary: str | os.PathLike,
    auxiliary: str | os.PathLike | None = None,
    *,
    device: torch.device | str = "cpu",
    metadata: Mapping[str, object] | None = None,
    calibrated: bool = True,
) -> dict:
    """``{"tasks": {task: {"predicted", "probabilities": {class: p}}}, "auxiliary_used", "head_weights", ...}``.

    The model's fitted temperatures are applied unless ``calibrated`` is False.
    Without ``auxiliary`` the primary branch answers alone (see :meth:`mmfuse.FusionModel.predict`).
    For the Derm7pt tasks the result also holds ``seven_point``: the checklist score of the predicted
    criteria and whether it reaches the melanoma threshold. ``metadata`` (field → raw value) is the
    case's patient metadata, for a model that takes it; without it such a model answers from the heads
    that do not read metadata (``metadata_used`` says which happened). ``notes`` lists, per image, what
    decoding it to 8-bit RGB changed (a greyscale, CMYK or 16-bit file; see
    :func:`mmfuse.data.images.conversion_note`).
    """
    from mmfuse.data.images import image_note
    from mmfuse.data.transforms import resolve_data_config

    prep = resolve_data_config(model)
    x = load_image(primary, prep).to(device)
    y = load_image(auxiliary, prep).to(device) if auxiliary is not None else None
    extra = {}
    if metadata is not None:
        if not getattr(model, "uses_metadata", False):
            raise UsageError("this model takes no metadata; drop the metadata")
        values, present = model.encode_metadata([metadata])
        extra = {"metadata": values.to(device), "metadata_present": present.to(device)}
    probabilities = model.to(device).predict(primary=x, auxiliary=y, calibrated=calibrated, **extra)
    tasks = {}
    for task in model.tasks:
        p = probabilities[task.name][0].float().cpu()
        tasks[task.name] = {
            "predicted": task.classes[int(p.argmax())],
            "probabilities": {c: float(v) for c, v in zip(task.classes, p.tolist(), strict=True)},
        }
    result = {
        "tasks": tasks,
        "auxiliary_used": auxiliary is not None,
        "head_weights": model.head_weights_dict if auxiliary is not None else {"primary": 1.0},
        "temperature_scaled": bool(calibrated and model.temperatures),
        "notes": [
            f"the {role} image {Path(path).name} {note}"
            for role, path in (("primary", primary), ("auxiliary", auxiliary))
            if path is not None and (note := image_note(path))
        ],
    }
    if getattr(model, "uses_metadata", False):
        result["metadata_used"] = bool(extra) and bool(extra["metadata_present"].all()) and y is not None
    score = seven_point({name: entry["predicted"] for name, entry in tasks.items()}, model.tasks)
    if score is not None:
        result["seven_point"] = score
    return result
