"""Fuzzing datasets: Derm7pt meta.csv, paired CSV tables and their YAML schemas, and image files.

Each case runs the commands that read them (``data check``, ``data prepare``, ``predict``) and asserts
the error contract: a clean result or a clear error naming the file, no traceback, no hang, and the
release itself is never modified (only ``.mmfuse-cache`` may appear).
"""

from __future__ import annotations

import os
import shutil
import struct
import tempfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from hostile import FUZZ, apply_edits, assert_contract, assert_unchanged, document_edits, fingerprint, invoke
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image
from test_training_fixtures import make_release

import mmfuse

CACHE = ".mmfuse-cache"


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    return make_release(tmp_path_factory.mktemp("fuzz-data") / "derm7pt", cases=12, size=32)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    model = mmfuse.build_model(
        "ammfm-swin", primary="test_convnext", auxiliary="test_efficientnet", img_size=32
    )
    return model.save_pretrained(tmp_path_factory.mktemp("fuzz-data-model") / "model")


def _read_commands(root: Path, *fmt: str) -> None:
    """check, stats and prepare on ``root``; the contract for each; the release unchanged by all."""
    before = fingerprint(root)
    for command in (["check"], ["stats"], ["prepare", "--size", "32", "--workers", "1"]):
        outcome = invoke("data", command[0], *fmt, root, *command[1:])
        assert_contract(outcome)
    assert_unchanged(before, root, ignore=(CACHE,))


# -- Derm7pt meta.csv ------------------------------------------------------------------------------------------

META_EDITS = st.sampled_from(
    [
        "bom",
        "crlf",
        "drop column",
        "duplicate case",
        "unknown label",
        "empty file",
        "header only",
        "absolute path",
        "escaping path",
        "symlink outside",
        "truncate",
        "latin-1 byte",
        "nul byte",
        "extra cells",
        "missing cells",
        "huge field",
    ]
)


def _edit_meta(root: Path, edit: str, pick: int, outside: Path) -> None:
    meta = root / "meta" / "meta.csv"
    raw = meta.read_bytes()
    text = raw.decode("utf-8", "surrogateescape")  # earlier edits may have left invalid bytes: keep them

    def write(new_text: str) -> None:
        meta.write_bytes(new_text.encode("utf-8", "surrogateescape"))

    lines = text.splitlines()
    if edit in ("empty file", "bom", "crlf", "truncate", "latin-1 byte", "nul byte") or len(lines) < 2:
        if edit == "empty file":
            meta.write_bytes(b"")
        elif edit == "bom":
            meta.write_bytes(b"\xef\xbb\xbf" + raw)
        elif edit == "crlf":
            meta.write_bytes(raw.replace(b"\n", b"\r\n"))
        elif edit == "truncate":
            meta.write_bytes(raw[: pick % max(1, len(raw))])
        elif edit == "latin-1 byte":
            meta.write_bytes(raw.replace(b"nevus", b"n\xe6vus", 1) + b"caf\xe9\n")
        elif edit == "nul byte":
            meta.write_bytes(raw[:200] + b"\x00" + raw[200:])
        return
    header, rows = lines[0].split(","), lines[1:]
    row = pick % len(rows)
    cells = rows[row].split(",")
    derm = header.index("derm") if "derm" in header else min(len(cells), len(header)) - 1
    if edit == "drop column":
        column = pick % len(header)
        write("\n".join(",".join(c for i, c in enumerate(r.split(",")) if i != column) for r in lines))
        return
    if edit == "duplicate case":
        write("\n".join([lines[0], *rows, rows[row]]) + "\n")
        return
    if edit == "header only":
        write(lines[0] + "\n")
        return
    if edit == "unknown label" and len(cells) > 1:
        cells[1 + pick % (len(cells) - 1)] = "no-such-label"
    elif edit in ("absolute path", "escaping path", "symlink outside") and 0 <= derm < len(cells):
        if edit == "absolute path":
            cells[derm] = str(outside)
        elif edit == "escaping path":
            cells[derm] = "../" * (2 + pick % 4) + outside.name
        else:
            link = root / "images" / f"link{pick}.png"
            if not link.is_symlink():
                link.symlink_to(outside)
            cells[derm] = link.name
    elif edit == "extra cells":
        cells += ["x", "y", "z"]
    elif edit == "missing cells":
        cells = cells[:3]
    elif edit == "huge field":
        cells[-1] = "x" * 200_000
    rows[row] = ",".join(cells)
    write("\n".join([lines[0], *rows]) + "\n")


@FUZZ
@given(edits=st.lists(st.tuples(META_EDITS, st.integers(0, 10_000)), min_size=1, max_size=3))
def test_fuzz_derm7pt_meta_csv(release, edits):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(shutil.copytree(release, Path(tmp) / "release"))
        outside = Path(tmp) / "outside.png"
        Image.new("RGB", (8, 8)).save(outside)
        for edit, pick in edits:
            _edit_meta(root, edit, pick, outside)
        _read_commands(root, "derm7pt")


@FUZZ
@given(which=st.sampled_from(["train", "valid", "test"]), text=st.text(max_size=40))
def test_fuzz_derm7pt_split_files(release, which, text):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(shutil.copytree(release, Path(tmp) / "release"))
        index = root / "meta" / f"{which}_indexes.csv"
        index.write_text(index.read_text() + text.replace("\r", "") + "\n")
        _read_commands(root, "derm7pt")


# -- paired CSV and YAML schema ----------------------------------------------------------------------------------


def _paired(root: Path) -> Path:
    """A three-case paired_csv release: images, cases.csv and schema.yaml."""
    (root / "images").mkdir(parents=True)
    rows = ["case,primary,auxiliary,diagnosis,age,split"]
    for i, (label, split) in enumerate([("benign", "train"), ("malignant", "valid"), ("benign", "test")]):
        for kind in ("p", "a"):
            Image.new("RGB", (24, 24), (40 * i, 90, 30)).save(root / "images" / f"{kind}{i}.png")
        rows.append(f"c{i},p{i}.png,a{i}.png,{label},{30 + i},{split}")
    (root / "cases.csv").write_text("\n".join(rows) + "\n")
    schema = {
        "table": "cases.csv",
        "image_dir": "images",
        "primary": "primary",
        "auxiliary": "auxiliary",
        "case_id": "case",
        "split": "split",
        "metadata": ["age"],
        "tasks": [{"name": "DIAG", "column": "diagnosis", "classes": ["benign", "malignant"]}],
    }
    (root / "schema.yaml").write_text(yaml.safe_dump(schema, sort_keys=False))
    return root / "schema.yaml"


@pytest.fixture(scope="module")
def paired(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("fuzz-paired") / "paired"
    _paired(root)
    return root


hostile_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True),
    st.text(max_size=10),
    st.sampled_from(["../../etc/passwd", "/etc/passwd", "images", ".", "cases.csv", "schema.yaml"]),
    st.lists(st.integers(-3, 3), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)


@FUZZ
@given(edits=document_edits(hostile_values, ["set", "delete", "add"]))
def test_fuzz_paired_schema_yaml(paired, edits):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(shutil.copytree(paired, Path(tmp) / "paired"))
        schema = yaml.safe_load((root / "schema.yaml").read_text())
        schema = apply_edits(schema, edits)
        (root / "schema.yaml").write_text(yaml.safe_dump(schema))
        _read_commands(root, "paired_csv", "--schema", root / "schema.yaml")


TABLE_EDITS = st.sampled_from(
    [
        "bom",
        "crlf",
        "drop column",
        "duplicate case",
        "unknown label",
        "empty",
        "absolute",
        "escaping",
        "blank cells",
    ]
)


@FUZZ
@given(edits=st.lists(st.tuples(TABLE_EDITS, st.integers(0, 10_000)), min_size=1, max_size=3))
def test_fuzz_paired_csv_table(paired, edits):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(shutil.copytree(paired, Path(tmp) / "paired"))
        table = root / "cases.csv"
        for edit, pick in edits:
            lines = table.read_text(encoding="utf-8", errors="replace").splitlines() or ["case"]
            rows = lines[1:] or [""]
            row = pick % len(rows)
            cells = rows[row].split(",")
            if edit == "bom":
                table.write_bytes(b"\xef\xbb\xbf" + table.read_bytes())
                continue
            if edit == "crlf":
                table.write_bytes(table.read_bytes().replace(b"\n", b"\r\n"))
                continue
            if edit == "drop column":
                column = pick % max(1, len(lines[0].split(",")))
                lines = [",".join(c for i, c in enumerate(r.split(",")) if i != column) for r in lines]
            elif edit == "duplicate case":
                lines.append(rows[row])
            elif edit == "unknown label" and len(cells) > 3:
                cells[3] = "unheard-of"
                lines[1 + row] = ",".join(cells)
            elif edit == "empty":
                lines = []
            elif edit in ("absolute", "escaping") and len(cells) > 1:
                cells[1] = "/etc/hostname" if edit == "absolute" else "../../../etc/hostname"
                lines[min(1 + row, len(lines) - 1)] = ",".join(cells)
            elif edit == "blank cells":
                lines[min(1 + row, len(lines) - 1)] = ",".join("" for _ in cells)
            table.write_text("\n".join(lines) + ("\n" if lines else ""))
        _read_commands(root, "paired_csv", "--schema", root / "schema.yaml")


# -- images ---------------------------------------------------------------------------------------------------------


def _png_header_only(path: Path, width: int, height: int) -> None:
    """A PNG that declares width x height but holds one empty IDAT: a decompression-bomb header."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")
    )


def _write_image(path: Path, kind: str, cut: int) -> bool:
    """Overwrite ``path`` with an image of ``kind``; True when the result must decode (a usable image)."""
    rgb = Image.fromarray(np.random.default_rng(cut).integers(0, 255, (40, 40, 3), dtype=np.uint8))
    if kind == "truncated":
        rgb.save(path, format="JPEG")
        data = path.read_bytes()
        path.write_bytes(data[: cut % (len(data) - 2)])
        return False
    if kind == "zero bytes":
        path.write_bytes(b"")
        return False
    if kind == "not an image":
        path.write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n")
        return False
    if kind == "wrong extension":
        rgb.save(path, format="PNG")  # PNG bytes under a .jpg name
        return True
    if kind == "cmyk":
        rgb.convert("CMYK").save(path, format="JPEG")
        return True
    if kind == "16-bit":
        Image.fromarray(np.arange(40 * 40, dtype=np.uint16).reshape(40, 40) * 40).save(path, format="PNG")
        return True
    if kind == "palette":
        rgb.convert("P").save(path, format="PNG")
        return True
    if kind == "1x1":
        Image.new("RGB", (1, 1), (200, 10, 10)).save(path, format="PNG")
        return True
    if kind == "huge header":
        _png_header_only(path, 30000, 30000)
        return False
    if kind == "grayscale+alpha":
        rgb.convert("LA").save(path, format="PNG")
        return True
    raise AssertionError(kind)


IMAGE_KINDS = [
    "truncated",
    "zero bytes",
    "not an image",
    "wrong extension",
    "cmyk",
    "16-bit",
    "palette",
    "1x1",
    "huge header",
    "grayscale+alpha",
]


@pytest.mark.parametrize("kind", IMAGE_KINDS)
def test_each_image_kind_through_check_prepare_and_predict(release, model_dir, kind, tmp_path):
    root = Path(shutil.copytree(release, tmp_path / "release"))
    target = sorted((root / "images").rglob("*.*"))[0]
    usable = _write_image(target, kind, cut=1234)
    before = fingerprint(root, model_dir)
    check = invoke("data", "check", "derm7pt", root, "--workers", "1")
    assert_contract(check)
    if not usable:
        assert check.code == 1 and target.name in check.out + check.err, check
    outcome = invoke("predict", model_dir, "--primary", target)
    assert_contract(outcome)
    assert (outcome.code == 0) == usable, outcome
    if not usable:
        assert target.name in outcome.err, outcome
    assert_contract(invoke("data", "prepare", "derm7pt", root, "--size", "32", "--workers", "1"))
    assert_unchanged(before, root, model_dir, ignore=(CACHE,))


@FUZZ
@given(cut=st.integers(0, 10**6), kind=st.sampled_from(["truncated", "wrong extension", "cmyk", "palette"]))
def test_fuzz_truncated_and_odd_images_in_predict(release, model_dir, cut, kind):
    with tempfile.TemporaryDirectory() as tmp:
        image = Path(tmp) / "case.jpg"
        usable = _write_image(image, kind, cut)
        outcome = invoke("predict", model_dir, "--primary", image, "--auxiliary", image)
        assert_contract(outcome)
        if not usable and outcome.code == 1:
            assert str(image) in outcome.err, outcome


def test_an_image_path_that_is_a_directory_or_fifo_is_one_line(model_dir, tmp_path):
    assert_contract(invoke("predict", model_dir, "--primary", tmp_path), allowed=(1,), names=(tmp_path,))
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    assert_contract(invoke("predict", model_dir, "--primary", fifo, limit=20), allowed=(1,), names=(fifo,))
