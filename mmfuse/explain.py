"""Where the model looked: per-task Grad-CAM on the primary encoder's last stage, and AAB attention.

Two kinds of map, both at the primary image's own size (``height x width`` of the file), or with
``max_side`` at the size of a copy whose longest side is at most ``max_side`` (what the demo page uses,
so that a 7000 x 7000 upload costs what a 1024 x 1024 one does):

- ``gradcam[task]`` — Grad-CAM (Selvaraju et al.) of the predicted class, computed by the ``grad-cam``
  library on the output of the primary encoder's last stage. The class score is the log of the Eq. 4
  mixture for that class (with an auxiliary image: the head-weighted mix; without: the primary head),
  so the map explains the number the page shows. Normalised to ``[0, 1]`` with its peak at exactly 1
  (the library's min-max scaling, repeated after resizing to the image); an all-zero map means no
  position raised the score.
- ``attention[stage]`` — for each fused stage whose block is an AAB (``aab``, or the primary side of
  ``bab``): how much attention the auxiliary-made map ``softmax(C_k C_qᵀ)`` puts on each primary
  position, averaged over the query positions. It is a distribution: it sums to 1 over the image's
  pixels (key pooling, where configured, is undone by spreading each pooled key over its pixels).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mmfuse.errors import UsageError
from mmfuse.fileio import atomic_write_bytes, atomic_write_text

GRADCAM_FILE = "gradcam_{task}.png"
ATTENTION_FILE = "attention_stage{stage}.png"
PREDICTIONS_FILE = "predictions.json"


@dataclass
class Explanation:
    """The prediction of one case and the maps that show where the model looked."""

    prediction: dict
    image: np.ndarray  # the primary image as decoded, H x W x 3 uint8
    gradcam: dict[str, np.ndarray] = field(default_factory=dict)  # task -> H x W in [0, 1]
    attention: dict[int, np.ndarray] = field(default_factory=dict)  # stage -> H x W, sums to 1

    def overlays(self, alpha: float = 0.45) -> dict[str, np.ndarray]:
        """``{file name: H x W x 3 uint8}``: every map blended over the primary image (jet colours)."""
        images = {
            GRADCAM_FILE.format(task=task): overlay(self.image, cam, alpha)
            for task, cam in self.gradcam.items()
        }
        for stage, attn in self.attention.items():
            # Shown stretched to [0, 1]: a near-uniform distribution would otherwise be one flat colour.
            low, span = float(attn.min()), float(attn.max() - attn.min())
            images[ATTENTION_FILE.format(stage=stage)] = overlay(
                self.image, (attn - low) / span if span > 0 else attn * 0, alpha
            )
        return images

    def save(self, out: str | os.PathLike) -> list[Path]:
        """Write the overlays as PNGs and ``predictions.json``; returns the written paths."""
        from PIL import Image

        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        written = []
        for name, pixels in self.overlays().items():
            png = io.BytesIO()
            Image.fromarray(pixels).save(png, format="PNG")
            atomic_write_bytes(out / name, png.getvalue())
            written.append(out / name)
        summary = {
            **self.prediction,
            "maps": {
                "gradcam": {task: GRADCAM_FILE.format(task=task) for task in self.gradcam},
                "attention": {str(s): ATTENTION_FILE.format(stage=s) for s in self.attention},
            },
        }
        atomic_write_text(out / PREDICTIONS_FILE, json.dumps(summary, indent=2) + "\n")
        written.append(out / PREDICTIONS_FILE)
        return written


def overlay(image: np.ndarray, heat: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """``heat`` (H x W in [0, 1]) in matplotlib's jet colours blended over ``image`` (H x W x 3 uint8)."""
    from matplotlib import colormaps

    colours = colormaps["jet"](np.clip(heat, 0.0, 1.0))[..., :3]
    blended = (1 - alpha) * image.astype(np.float32) / 255.0 + alpha * colours
    return (np.clip(blended, 0.0, 1.0) * 255).round().astype(np.uint8)


def _require_gradcam():
    try:
        from pytorch_grad_cam import GradCAM
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    except ImportError as exc:  # an optional extra: the core library must not need it
        raise ImportError("explanations need the 'grad-cam' package: pip install 'mmfuse[demo]'") from exc
    return GradCAM, ClassifierOutputTarget


@contextlib.contextmanager
def _tap_last_stage(encoder: nn.Module, tap: nn.Module) -> Iterator[None]:
    """Route the encoder's last stage output through ``tap`` (an identity the library can hook).

    Works for any :class:`mmfuse.Encoder`, whose stages need not be modules of their own.
    """
    original = encoder.forward_stage
    last = encoder.num_stages - 1

    def forward_stage(index: int, x: torch.Tensor) -> torch.Tensor:
        out = original(index, x)
        return tap(out) if index == last else out

    encoder.forward_stage = forward_stage
    try:
        yield
    finally:
        del encoder.forward_stage


class _TaskScores(nn.Module):
    """``primary -> [batch, sum(classes)]``: log of Eq. 4's mixture per task, the auxiliary image held fixed."""

    def __init__(self, model: nn.Module, auxiliary: torch.Tensor | None, calibrated: bool) -> None:
        super().__init__()
        self.model = model
        self.auxiliary = auxiliary
        self.calibrated = calibrated

    def forward(self, primary: torch.Tensor) -> torch.Tensor:
        auxiliary = None
        if self.auxiliary is not None:
            auxiliary = self.auxiliary.expand(primary.shape[0], -1, -1, -1)
        output = self.model(primary=primary, auxiliary=auxiliary)
        probabilities = self.model.mix_output(output, calibrated=self.calibrated)
        return torch.cat([probabilities[t.name].clamp_min(1e-12).log() for t in self.model.tasks], dim=1)


def _gradcam(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor | None,
    classes: dict[str, int],
    calibrated: bool,
) -> dict[str, np.ndarray]:
    GradCAM, ClassifierOutputTarget = _require_gradcam()
    offsets, start = {}, 0
    for task in model.tasks:
        offsets[task.name] = start
        start += task.num_classes
    names = list(classes)
    tap = nn.Identity()
    scores = _TaskScores(model, y, calibrated)
    # One batch of identical rows, one row per task: a single forward and backward for all maps.
    batch = x.expand(len(names), -1, -1, -1).clone()
    targets = [ClassifierOutputTarget(offsets[n] + classes[n]) for n in names]
    with _tap_last_stage(model.primary_encoder, tap), GradCAM(model=scores, target_layers=[tap]) as cam:
        maps = cam(input_tensor=batch, targets=targets)
    return {name: maps[i] for i, name in enumerate(names)}


def _aab_blocks(model: nn.Module) -> dict[int, nn.Module]:
    """The fused stages whose block is the paper's AAB (``aab``, or the primary side of ``bab``)."""
    fusion = getattr(model, "config", {}).get("fusion")
    if fusion not in ("aab", "bab"):
        return {}
    blocks = {}
    for stage, block in getattr(model, "fusion_blocks", {}).items():
        blocks[int(stage)] = block.to_primary if fusion == "bab" else block
    return blocks


def _attention(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[int, torch.Tensor]:
    """``{stage: [h, w]}``: attention received by each primary position of that stage, summing to 1."""
    from mmfuse.attention import effective_key_pool

    blocks = _aab_blocks(model)
    captured: dict[int, dict[str, torch.Tensor]] = {s: {} for s in blocks}
    handles = []
    for stage, block in blocks.items():
        for name in ("query", "key"):
            handles.append(
                getattr(block, name).register_forward_hook(
                    lambda _m, _i, out, s=stage, n=name: captured[s].__setitem__(n, out.detach())
                )
            )
    try:
        with torch.no_grad():
            model(primary=x, auxiliary=y)
    finally:
        for handle in handles:
            handle.remove()
    maps = {}
    for stage, block in blocks.items():
        q, k = captured[stage]["query"], captured[stage]["key"]
        options = block.attention.kwargs
        height, width = k.shape[-2:]
        pool = effective_key_pool(height * width, options["key_pool"], options["max_key_tokens"])
        if pool > 1:
            k = F.avg_pool2d(k, pool, ceil_mode=True)
        scale = options["scale"] if options["scale"] is not None else q.shape[1] ** -0.5
        qt, kt = q.flatten(2).transpose(1, 2), k.flatten(2)
        weights = torch.softmax(scale * qt @ kt, dim=-1)  # [1, queries, keys]
        received = weights.mean(dim=1)[0].reshape(k.shape[-2:])
        if pool > 1:  # spread each pooled key evenly over the positions it covers
            received = received.repeat_interleave(pool, 0).repeat_interleave(pool, 1)[:height, :width]
            received = received / received.sum()
        maps[stage] = received
    return maps


def _resize_map(heat: np.ndarray | torch.Tensor, height: int, width: int, *, mass: bool) -> np.ndarray:
    t = torch.as_tensor(np.asarray(heat, dtype=np.float32))[None, None]
    resized = F.interpolate(t, size=(height, width), mode="bilinear", align_corners=False)[0, 0]
    resized = resized.clamp_min(0)
    if mass:
        total = float(resized.sum())
        resized = resized / total if total > 0 else resized
    else:  # interpolation lowers a sharp peak: rescale so the peak is 1 again
        top = float(resized.max())
        resized = resized / top if top > 0 else resized
    return resized.numpy()


def explain(
    model: nn.Module,
    primary: str | os.PathLike,
    auxiliary: str | os.PathLike | None = None,
    *,
    tasks: list[str] | None = None,
    device: torch.device | str = "cpu",
    calibrated: bool = True,
    max_side: int | None = None,
) -> Explanation:
    """Predict one image pair and compute the maps of :mod:`mmfuse.explain` (``tasks``: all by default).

    The prediction is :func:`mmfuse.evaluation.pair.predict_pair`'s, so it equals ``mmfuse predict``'s.
    Without ``auxiliary`` there is no attention map (the fusion blocks do not run). ``max_side`` bounds
    the longest side of the image the maps and overlays are made at (the aspect ratio is kept; the
    model sees its own input size either way); ``None`` keeps the file's size.
    """
    from mmfuse.evaluation.pair import load_image, predict_pair

    if max_side is not None and max_side < 1:
        raise UsageError(f"max_side must be at least 1 pixel, got {max_side}")
    prediction = predict_pair(model, primary, auxiliary, device=device, calibrated=calibrated)
    image = load_rgb(primary, max_side)
    height, width = image.shape[:2]
    prep = model.data_config
    x = load_image(primary, prep).to(device)
    y = load_image(auxiliary, prep).to(device) if auxiliary is not None else None
    names = tasks or [t.name for t in model.tasks]
    unknown = set(names) - {t.name for t in model.tasks}
    if unknown:
        raise UsageError(
            f"unknown tasks {sorted(unknown)}; the model's tasks are {[t.name for t in model.tasks]}"
        )
    by_name = {t.name: t for t in model.tasks}
    classes = {n: by_name[n].classes.index(prediction["tasks"][n]["predicted"]) for n in names}
    was_training = model.training
    model.eval()
    try:
        cams = _gradcam(model, x, y, classes, calibrated)
        attention = _attention(model, x, y) if y is not None else {}
    finally:
        model.train(was_training)
    return Explanation(
        prediction=prediction,
        image=image,
        gradcam={n: _resize_map(cam, height, width, mass=False) for n, cam in cams.items()},
        attention={s: _resize_map(a.cpu(), height, width, mass=True) for s, a in attention.items()},
    )


def load_rgb(path: str | os.PathLike, max_side: int | None = None) -> np.ndarray:
    """The image as H x W x 3 uint8, through mmfuse's image loader (same checks, same errors).

    With ``max_side``, shrunk (aspect kept) until its longest side is at most ``max_side``; a JPEG is
    decoded at a reduced scale to begin with.
    """
    from PIL import Image

    from mmfuse.data.images import open_rgb

    img = open_rgb(Path(path), max_side)
    if max_side is not None and max(img.size) > max_side:
        img.thumbnail((max_side, max_side), Image.Resampling.BILINEAR, reducing_gap=2.0)
    return np.array(img)
