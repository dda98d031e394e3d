"""Reading safetensors files defensively: a damaged file is an error naming it, never a raw traceback.

safetensors raises its own ``SafetensorError`` (not an ``OSError`` or ``ValueError``) for an empty,
truncated or corrupt file, with a message that does not say which file; these helpers name the file
and raise :class:`~mmfuse.errors.CorruptWeightsError` instead. Only the header is parsed to check a
file, so checking is cheap before the tensors are mapped.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import torch

from mmfuse.errors import CorruptWeightsError, WeightsMismatchError


def _corrupt(path: Path, reason: object) -> CorruptWeightsError:
    return CorruptWeightsError(
        f"{path} is not a readable safetensors file ({reason}); it is empty, truncated or corrupt — "
        "write it again (save_pretrained, or rerun the training that wrote it)"
    )


def read_header(path: str | os.PathLike) -> dict[str, tuple[torch.dtype, tuple[int, ...]]]:
    """``{name: (dtype, shape)}`` of every tensor in ``path``; :class:`CorruptWeightsError` if unreadable."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as handle:
            return {
                name: (handle.get_slice(name).get_dtype(), tuple(handle.get_slice(name).get_shape()))
                for name in handle.keys()  # noqa: SIM118 - safe_open has no __iter__
            }
    except SafetensorError as exc:
        raise _corrupt(path, exc) from None
    except (OSError, ValueError, TypeError, OverflowError) as exc:
        raise _corrupt(path, exc) from None


_DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}


def _torch_dtype(name: object) -> torch.dtype | None:
    return _DTYPES.get(str(name).upper())


def load_tensors(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """All tensors of ``path`` on the CPU; :class:`CorruptWeightsError` naming it if it cannot be read."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    read_header(path)
    try:
        return load_file(str(path), device="cpu")
    except SafetensorError as exc:
        raise _corrupt(path, exc) from None
    except (OSError, ValueError, TypeError, RuntimeError) as exc:
        raise _corrupt(path, exc) from None


def check_compatible(
    expected: Mapping[str, torch.Tensor], header: Mapping[str, tuple[object, tuple[int, ...]]], path: Path
) -> None:
    """Every tensor of ``header`` that ``expected`` also has matches it in shape and kind of dtype.

    Floating-point tensors may be stored in another floating-point precision (a float16 copy of a
    model is common); an integer or boolean tensor where a float one is expected is a mismatch.
    Missing and unexpected names are left to the caller, which knows which of them matter.
    """
    problems = []
    for name, (dtype, shape) in header.items():
        if name not in expected:
            continue
        want = expected[name]
        if tuple(want.shape) != tuple(shape):
            problems.append(f"{name}: shape {list(shape)}, the model needs {list(want.shape)}")
            continue
        got = _torch_dtype(dtype)
        if got is None or got.is_floating_point != want.dtype.is_floating_point:
            problems.append(
                f"{name}: dtype {dtype}, the model needs {str(want.dtype).removeprefix('torch.')}"
            )
    if problems:
        shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        raise WeightsMismatchError(f"weights in {path} do not fit the model: {shown}")
