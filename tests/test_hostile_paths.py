"""Image paths and files from an untrusted table: nothing outside the dataset is read, only image formats
are decoded, and oversized images are refused from their header without losing the rest of a check."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import EpsImagePlugin, Image
from test_silent_wrong_results import write_paired_csv

from mmfuse.cli import main
from mmfuse.data import DataError, build_dataset
from mmfuse.data.formats.paired_csv import load_paired_csv
from mmfuse.data.images import DEFAULT_MAX_PIXELS, MAX_PIXELS_ENV, load_resized, verify_image
from mmfuse.data.validate import check_paired_csv

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def png_claiming(path: Path, width: int, height: int) -> Path:
    """A small PNG whose header claims ``width`` x ``height``: what PIL sees before decoding anything."""
    Image.new("L", (4, 4)).save(path)
    data = bytearray(path.read_bytes())
    ihdr = 8 + 8  # signature, then the IHDR chunk's length and type
    data[ihdr : ihdr + 8] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[ihdr - 4 : ihdr + 13]))
    data[ihdr + 13 : ihdr + 17] = struct.pack(">I", crc)
    path.write_bytes(bytes(data))
    return path


def kinds(problems) -> list[str]:
    return [p.kind for p in problems]


@pytest.mark.parametrize("how", ["dotdot", "absolute", "symlink"])
def test_image_paths_outside_the_dataset_are_refused_unless_allowed(tmp_path, how):
    secret = tmp_path / "private.png"
    Image.new("RGB", (8, 8), (200, 10, 10)).save(secret)
    root = tmp_path / "data"
    if how == "symlink":
        (root / "img").mkdir(parents=True)
        os.symlink(secret, root / "img" / "link.png")
        written = "link.png"
    else:
        written = "../../private.png" if how == "dotdot" else str(secret)
    schema = write_paired_csv(root, tasks=["A"], image=written)
    problems = check_paired_csv(root, schema)
    assert kinds(problems) == ["outside root"]
    assert "row 0" in problems[0].message and "allow_outside_root" in problems[0].message
    with pytest.raises(DataError, match="outside the dataset folder"):
        load_paired_csv(root, schema)
    config = {"format": "paired_csv", "root": str(root), "schema": str(schema), "cache": "off"}
    with pytest.raises(DataError, match="outside"):
        build_dataset(config, "train", train=False, img_size=8, mean=MEAN, std=STD)
    allowed = build_dataset(
        {**config, "allow_outside_root": True}, "train", train=False, img_size=8, mean=MEAN, std=STD
    )
    assert allowed.records[0].primary_path.resolve() == secret.resolve()
    assert check_paired_csv(root, schema, allow_outside_root=True) == []
    args = ["data", "check", "paired_csv", str(root), "--schema", str(schema)]
    assert main(args) == 1 and main([*args, "--allow-outside-root"]) == 0


def test_a_symlink_to_a_system_file_is_never_opened(tmp_path, monkeypatch):
    root = tmp_path / "data"
    (root / "img").mkdir(parents=True)
    os.symlink("/etc/passwd", root / "img" / "passwd.png")
    schema = write_paired_csv(root, tasks=["A"], image="passwd.png")
    opened = []
    real_open = Image.open
    monkeypatch.setattr(
        Image, "open", lambda fp, *a, **k: (opened.append(str(fp)), real_open(fp, *a, **k))[1]
    )
    problems = check_paired_csv(root, schema)
    assert kinds(problems) == ["outside root"] and "/etc/passwd" in problems[0].message
    assert not any("passwd" in name for name in opened)


def test_only_image_formats_are_decoded_so_eps_never_reaches_ghostscript(tmp_path, monkeypatch):
    def no_ghostscript(*args, **kwargs):
        raise AssertionError("Ghostscript must not run")

    monkeypatch.setattr(EpsImagePlugin, "Ghostscript", no_ghostscript)
    eps = tmp_path / "lesion.png"
    eps.write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 8 8\nshowpage\n%%EOF\n")
    assert Image.open(eps).format == "EPS"  # PIL alone would pick its EPS decoder
    reason = verify_image(eps)
    assert reason is not None and "not a supported image file" in reason and "JPEG, PNG" in reason
    with pytest.raises(DataError, match="lesion.png"):
        load_resized(eps, 8)


def test_a_decompression_bomb_and_an_oversized_image_are_two_problems_of_one_report(tmp_path):
    root = tmp_path / "data"
    schema = write_paired_csv(root, tasks=["A"])
    png_claiming(root / "img" / "a0.png", 30000, 30000)  # PIL's DecompressionBombError
    png_claiming(root / "img" / "b1.png", 12000, 12000)  # under PIL's limit, over mmfuse's
    (root / "img" / "a2.png").unlink()
    problems = check_paired_csv(root, schema)
    assert kinds(problems) == ["unreadable image", "unreadable image", "missing file"]
    assert "a0.png" in problems[0].message and "too large to decode safely" in problems[0].message
    assert "b1.png" in problems[1].message and "12000 x 12000 = 144.0 megapixels" in problems[1].message
    assert MAX_PIXELS_ENV in problems[1].message


def test_the_pixel_limit_is_documented_and_can_be_raised(tmp_path, monkeypatch):
    assert DEFAULT_MAX_PIXELS == 64_000_000
    docs = (Path(__file__).resolve().parents[1] / "docs" / "data.md").read_text()
    assert MAX_PIXELS_ENV in docs and "allow_outside_root" in docs
    big = png_claiming(tmp_path / "big.png", 9000, 9000)
    assert "megapixels" in verify_image(big)
    monkeypatch.setenv(MAX_PIXELS_ENV, "100000000")
    assert "megapixels" not in verify_image(big)  # past the limit: now it is the truncated data that fails
    monkeypatch.setenv(MAX_PIXELS_ENV, "lots")
    with pytest.raises(DataError, match=MAX_PIXELS_ENV):
        load_resized(big, 8)
    monkeypatch.delenv(MAX_PIXELS_ENV)
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / "ok.png")
    assert verify_image(tmp_path / "ok.png") is None
