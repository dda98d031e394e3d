"""Fuzzing model folders: damaged safetensors and edited config.json, read by predict and from_pretrained.

Every case ends in a prediction or one clear error naming the file; never a traceback or a hang, and the
model folder is never modified by reading it.
"""

from __future__ import annotations

import json
import math
import shutil
import struct
import tempfile
from pathlib import Path

import pytest
import safetensors.torch
import torch
from hostile import FUZZ, apply_edits, assert_contract, assert_unchanged, document_edits, fingerprint, invoke
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

import mmfuse
from mmfuse.errors import MmfuseError

TINY = {"primary": "test_convnext", "auxiliary": "test_efficientnet", "img_size": 32}


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("fuzz-model")
    torch.manual_seed(0)
    model = mmfuse.build_model("ammfm-swin", **TINY).save_pretrained(tmp / "model")
    image = tmp / "lesion.png"
    Image.new("RGB", (36, 36), (170, 110, 80)).save(image)
    return model, image


def _check(model_dir: Path, image: Path) -> None:
    """predict and from_pretrained on ``model_dir``: a result, or one clear error; the folder unchanged."""
    before = fingerprint(model_dir)
    outcome = invoke("predict", model_dir, "--primary", image, "--auxiliary", image, "--json")
    assert_contract(outcome)
    if outcome.code == 0:
        result = json.loads(outcome.out)
        for entry in result["tasks"].values():
            assert all(math.isfinite(p) and 0 <= p <= 1 for p in entry["probabilities"].values()), outcome
    else:
        assert str(model_dir) in outcome.err or "config.json" in outcome.err, outcome
    try:
        mmfuse.from_pretrained(model_dir)
    except MmfuseError:
        assert outcome.code == 1, "the library refused what the command accepted"
    assert_unchanged(before, model_dir)


def _header(data: bytes) -> tuple[int, dict]:
    (length,) = struct.unpack("<Q", data[:8])
    return length, json.loads(data[8 : 8 + length])


# -- safetensors --------------------------------------------------------------------------------------------


@FUZZ
@given(data=st.data())
def test_fuzz_weights_truncated_at_any_point(saved, data):
    model_dir, image = saved
    weights = (model_dir / "model.safetensors").read_bytes()
    cut = data.draw(st.integers(0, len(weights) - 1), label="keep bytes")
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(shutil.copytree(model_dir, Path(tmp) / "model"))
        (copy / "model.safetensors").write_bytes(weights[:cut])
        _check(copy, image)
        assert invoke("predict", copy, "--primary", image).code == 1


header_edits = st.one_of(
    st.tuples(st.just("length"), st.integers(0, 2**64 - 1)),
    st.tuples(st.just("bytes"), st.integers(0, 400), st.binary(min_size=1, max_size=16)),
    st.tuples(st.just("json"), st.sampled_from(["dtype", "shape", "data_offsets"]), st.integers(0, 10_000)),
)


@FUZZ
@given(edit=header_edits, value=st.one_of(st.integers(-(2**40), 2**40), st.text(max_size=5), st.none()))
def test_fuzz_weights_header_corrupted(saved, edit, value):
    model_dir, image = saved
    weights = bytearray((model_dir / "model.safetensors").read_bytes())
    length, header = _header(bytes(weights))
    if edit[0] == "length":
        weights[:8] = struct.pack("<Q", edit[1])
    elif edit[0] == "bytes":
        start = 8 + min(edit[1], length - 1)
        weights[start : start + len(edit[2])] = edit[2]
    else:
        names = sorted(k for k in header if k != "__metadata__")
        name = names[edit[2] % len(names)]
        header[name][edit[1]] = value if edit[1] == "dtype" else [value, value]
        encoded = json.dumps(header).encode().ljust(length)
        weights = bytearray(struct.pack("<Q", len(encoded)) + encoded + weights[8 + length :])
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(shutil.copytree(model_dir, Path(tmp) / "model"))
        (copy / "model.safetensors").write_bytes(bytes(weights))
        _check(copy, image)


tensor_edits = st.sampled_from(["dtype", "shape", "drop", "extra", "rename"])


@FUZZ
@given(
    edit=tensor_edits,
    which=st.integers(0, 10_000),
    dtype=st.sampled_from(
        [torch.float16, torch.bfloat16, torch.float64, torch.int64, torch.int8, torch.bool]
    ),
)
def test_fuzz_weights_wrong_dtype_shape_and_keys(saved, edit, which, dtype):
    model_dir, image = saved
    tensors = safetensors.torch.load_file(model_dir / "model.safetensors")
    names = sorted(tensors)
    name = names[which % len(names)]
    if edit == "dtype":
        tensors[name] = tensors[name].to(dtype)
    elif edit == "shape":
        tensors[name] = torch.zeros(*(s + 1 for s in tensors[name].shape), 1)
    elif edit == "drop":
        del tensors[name]
    elif edit == "extra":
        tensors["extra.weight"] = torch.zeros(3)
    else:
        tensors[name + ".renamed"] = tensors.pop(name)
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(shutil.copytree(model_dir, Path(tmp) / "model"))
        safetensors.torch.save_file(tensors, copy / "model.safetensors")
        _check(copy, image)
        outcome = invoke("predict", copy, "--primary", image)
        float_copy = edit == "dtype" and dtype.is_floating_point
        num_batches = name.endswith("num_batches_tracked")  # an integer counter: any integer dtype fits
        if not float_copy and not (num_batches and edit == "dtype" and dtype != torch.bool):
            assert outcome.code == 1, f"{edit} of {name} to {dtype} was accepted"


def test_weights_replaced_by_a_pickle_are_refused_by_name(saved):
    model_dir, image = saved
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(shutil.copytree(model_dir, Path(tmp) / "model"))
        (copy / "model.safetensors").unlink()
        torch.save({"w": torch.zeros(1)}, copy / "pytorch_model.bin")
        outcome = invoke("predict", copy, "--primary", image)
        assert_contract(outcome, allowed=(1,), names=("pickle",))


# -- config.json ----------------------------------------------------------------------------------------------

hostile_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.sampled_from([0, -1, -32, 1, 2, 3, 10**6, 10**12, 2**63]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["os.system", "__import__", "../../etc/passwd", "test_convnext", "concat", "linear"]),
    st.lists(st.integers(-5, 5), max_size=4),
    st.dictionaries(st.text(max_size=6), st.integers(-3, 3), max_size=3),
)


@FUZZ
@given(
    edits=document_edits(
        hostile_values, ["set", "set", "set", "delete", "add"], key=st.text(min_size=1, max_size=8)
    )
)
def test_fuzz_config_json_random_edits(saved, edits):
    model_dir, image = saved
    config = json.loads((model_dir / "config.json").read_text())
    config = apply_edits(config, edits, include_root=True)
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(shutil.copytree(model_dir, Path(tmp) / "model"))
        (copy / "config.json").write_text(json.dumps(config))
        _check(copy, image)


@FUZZ
@given(text=st.one_of(st.text(max_size=200), st.binary(max_size=200).map(lambda b: b.decode("latin-1"))))
def test_fuzz_config_json_not_json(saved, text):
    model_dir, image = saved
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(shutil.copytree(model_dir, Path(tmp) / "model"))
        (copy / "config.json").write_bytes(text.encode("utf-8", "surrogatepass"))
        _check(copy, image)


@FUZZ
@given(key_index=st.integers(0, 10_000), value=hostile_values)
def test_fuzz_config_json_each_field_any_value(saved, key_index, value):
    model_dir, image = saved
    config = json.loads((model_dir / "config.json").read_text())
    keys = sorted(config)
    config[keys[key_index % len(keys)]] = value
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(shutil.copytree(model_dir, Path(tmp) / "model"))
        (copy / "config.json").write_text(json.dumps(config))
        _check(copy, image)
