"""Checkpoints that survive SIGKILL: each is a directory written under a temporary name, then renamed.

``checkpoints/epoch_0007/`` holds ``model.safetensors`` (the live weights), ``swa.safetensors`` (the
running average), ``optimizer.safetensors`` (Adam's moments) and ``state.json`` (epoch, scheduler and
scaler states, the optimizer's hyper-parameters, every RNG state, the epoch log). A directory rename is
atomic, so a checkpoint is either complete or absent; :func:`latest` ignores leftovers of a killed write.
"""

from __future__ import annotations

import base64
import json
import os
import random
import shutil
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import save_file

from mmfuse.errors import CheckpointError, CorruptWeightsError, RunDirError
from mmfuse.safeweights import load_tensors

PREFIX = "epoch_"
STATE_FILE = "state.json"


def _contiguous(tensors: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}


# -- RNG states --------------------------------------------------------------------------------------
def _encode(tensor: torch.Tensor) -> str:
    return base64.b64encode(tensor.cpu().numpy().tobytes()).decode("ascii")


def _decode(text: str) -> torch.Tensor:
    return torch.frombuffer(bytearray(base64.b64decode(text)), dtype=torch.uint8).clone()


def rng_states() -> dict:
    """Python, NumPy, torch CPU and CUDA generator states as JSON-able data."""
    py_version, py_state, py_gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    states = {
        "python": [py_version, list(py_state), py_gauss],
        "numpy": [np_name, np_keys.tolist(), int(np_pos), int(np_has_gauss), float(np_gauss)],
        "torch": _encode(torch.get_rng_state()),
    }
    if torch.cuda.is_available():
        states["cuda"] = [_encode(s) for s in torch.cuda.get_rng_state_all()]
    return states


def set_rng_states(states: Mapping) -> None:
    version, state, gauss = states["python"]
    random.setstate((version, tuple(state), gauss))
    name, keys, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(_decode(states["torch"]))
    if "cuda" in states and torch.cuda.is_available():
        cuda_states = [_decode(s) for s in states["cuda"]]
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)


# -- optimizer state -------------------------------------------------------------------------------
def split_optimizer_state(state_dict: Mapping) -> tuple[dict[str, torch.Tensor], dict]:
    """Tensors (for safetensors) and everything else (for JSON) of ``optimizer.state_dict()``."""
    tensors, scalars = {}, {}
    for index, entries in state_dict["state"].items():
        for key, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{index}.{key}"] = value
            else:
                scalars.setdefault(str(index), {})[key] = value
    return tensors, {"param_groups": state_dict["param_groups"], "scalars": scalars}


def join_optimizer_state(tensors: Mapping[str, torch.Tensor], meta: Mapping) -> dict:
    state: dict[int, dict] = {}
    for name, tensor in tensors.items():
        index, key = name.split(".", 1)
        state.setdefault(int(index), {})[key] = tensor
    for index, entries in meta.get("scalars", {}).items():
        state.setdefault(int(index), {}).update(entries)
    groups = [dict(g, betas=tuple(g["betas"])) if "betas" in g else dict(g) for g in meta["param_groups"]]
    return {"state": state, "param_groups": groups}


# -- directories -------------------------------------------------------------------------------------
def checkpoint_dir(root: str | Path, epoch: int) -> Path:
    return Path(root) / f"{PREFIX}{epoch:04d}"


def latest(root: str | Path) -> Path | None:
    """The complete checkpoint with the highest epoch under ``root``, or ``None``."""
    root = Path(root)
    if not root.is_dir():
        return None
    done = [
        p
        for p in root.iterdir()
        if p.is_dir() and p.name.startswith(PREFIX) and p.name[len(PREFIX) :].isdigit()
    ]
    done = [p for p in done if (p / STATE_FILE).is_file()]
    return max(done, key=lambda p: int(p.name[len(PREFIX) :]), default=None)


def save(
    root: str | Path,
    epoch: int,
    *,
    tensors: Mapping[str, Mapping[str, torch.Tensor]],
    state: Mapping,
    keep: int = 1,
) -> Path:
    """Write ``{name}.safetensors`` for each entry of ``tensors`` and ``state.json``, atomically.

    Older checkpoints beyond the ``keep`` most recent are removed only after the new one is in place.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    final = checkpoint_dir(root, epoch)
    tmp = root / f".{final.name}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        tmp.mkdir()
        for name, group in tensors.items():
            save_file(_contiguous(group), str(tmp / f"{name}.safetensors"))
        (tmp / STATE_FILE).write_text(json.dumps(state))
        for child in tmp.iterdir():
            with open(child, "rb") as handle:
                os.fsync(handle.fileno())
    except (OSError, SafetensorError) as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        kept = latest(root)
        raise RunDirError(
            f"cannot write the checkpoint of epoch {epoch} under {root} ({reason}); "
            + (
                f"the previous checkpoint {kept.name} is kept and --resume continues from it"
                if kept
                else "no earlier checkpoint exists"
            )
        ) from None
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    previous = sorted(
        (p for p in root.iterdir() if p.is_dir() and p.name.startswith(PREFIX) and p != final),
        key=lambda p: p.name,
    )
    for old in previous[: max(0, len(previous) - max(keep, 1) + 1)]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load(path: str | Path) -> tuple[dict[str, dict[str, torch.Tensor]], dict]:
    """``(tensors by file stem, state)`` of a checkpoint directory."""
    path = Path(path)
    state_file = path / STATE_FILE
    if not state_file.is_file():
        raise CheckpointError(f"not a complete checkpoint (no {STATE_FILE}): {path}")
    try:
        tensors = {p.stem: load_tensors(p) for p in sorted(path.glob("*.safetensors"))}
    except CorruptWeightsError as exc:
        raise CheckpointError(f"checkpoint {path} is damaged: {exc}") from None
    try:
        state = json.loads(state_file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{state_file} is not valid JSON ({exc}); the checkpoint is damaged") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{state_file} must hold a JSON object; the checkpoint is damaged")
    return tensors, state
