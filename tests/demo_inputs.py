"""Files a visitor might upload to the demo page: a good pair and every kind of bad input."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


def good_image(path: Path, seed: int = 0, size: int = 96) -> Path:
    rng = np.random.default_rng(seed)
    pixels = np.full((size, size, 3), (214, 170, 140), np.uint8)
    y, x = np.mgrid[:size, :size]
    centre = rng.integers(size // 4, 3 * size // 4, 2)
    pixels[(x - centre[0]) ** 2 + (y - centre[1]) ** 2 < (size // 6) ** 2] = (80, 50, 40)
    Image.fromarray(pixels).save(path, quality=92)
    return path


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bad_inputs(folder: Path) -> dict[str, Path]:
    """``{description: file}``; CMYK and 16-bit are valid images that the loader converts."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    files["not an image"] = folder / "notes.txt"
    files["not an image"].write_text("this is a text file, not a photograph\n")
    whole = good_image(folder / "whole.jpg").read_bytes()
    files["truncated JPEG"] = folder / "truncated.jpg"
    files["truncated JPEG"].write_bytes(whole[: len(whole) // 2])
    files["30000x30000 header"] = folder / "bomb.png"
    files["30000x30000 header"].write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0))
        + _png_chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + _png_chunk(b"IEND", b"")
    )
    files["1-pixel image"] = folder / "pixel.png"
    Image.new("RGB", (1, 1), (200, 150, 120)).save(files["1-pixel image"])
    files["CMYK JPEG"] = folder / "cmyk.jpg"
    Image.open(good_image(folder / "rgb.jpg")).convert("CMYK").save(files["CMYK JPEG"])
    files["16-bit PNG"] = folder / "sixteen.png"
    ramp = (np.linspace(0, 65535, 96 * 96).reshape(96, 96)).astype(np.uint16)
    Image.fromarray(ramp).save(files["16-bit PNG"])
    return files


REJECTED = ("not an image", "truncated JPEG", "30000x30000 header", "1-pixel image")
CONVERTED = ("CMYK JPEG", "16-bit PNG")
