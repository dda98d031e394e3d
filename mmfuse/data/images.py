"""Image files: find them (with an explicit case-insensitive fallback), decode them fully, resize them.

Every decode goes through :func:`open_rgb` (an already opened PIL image through :func:`to_rgb8`), so the
prepared cache, the uncached path, ``predict`` and the demo page see the very same pixels: turned upright
by the file's EXIF orientation, as a phone or camera that stores its frames sideways means them to be
shown, then converted to 8-bit RGB (:func:`conversion_note` says what a conversion changed).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from mmfuse.data.errors import DataError, Problem

log = logging.getLogger(__name__)

# Formats PIL may open: photographs and scans. Anything else (EPS runs Ghostscript, and exotic decoders
# are attack surface) is refused before its decoder is chosen.
SUPPORTED_FORMATS = ("JPEG", "PNG", "BMP", "TIFF", "WEBP")

# Largest image decoded, in pixels (64 MP: a 9600 x 6600 camera frame fits, a 12000 x 12000 file that would
# take over 1 GB to decode and resize does not). MMFUSE_MAX_IMAGE_PIXELS changes it; PIL still refuses
# files over 2 x Image.MAX_IMAGE_PIXELS (about 179 MP) as decompression bombs.
DEFAULT_MAX_PIXELS = 64_000_000
MAX_PIXELS_ENV = "MMFUSE_MAX_IMAGE_PIXELS"


def max_image_pixels() -> int:
    """The pixel limit in force: ``MMFUSE_MAX_IMAGE_PIXELS`` if set, else :data:`DEFAULT_MAX_PIXELS`."""
    text = os.environ.get(MAX_PIXELS_ENV, "").strip()
    if not text:
        return DEFAULT_MAX_PIXELS
    if not text.isascii() or not text.isdigit() or int(text) < 1:
        raise DataError(f"{MAX_PIXELS_ENV} must be a positive whole number of pixels, got {text!r}")
    return int(text)


def check_pixel_count(path: Path, size: tuple[int, int]) -> None:
    """Refuse an image larger than :func:`max_image_pixels` from its header, before decoding it."""
    limit = max_image_pixels()
    width, height = size
    if width * height > limit:
        raise DataError(
            f"image {path} is {width} x {height} = {width * height / 1e6:.1f} megapixels, over the limit of "
            f"{limit / 1e6:.1f} MP; downscale it, or raise the limit with {MAX_PIXELS_ENV}"
        )


class OutsideRootError(DataError):
    """An image path in a table leads outside the dataset's folder (``..``, an absolute path, a symlink)."""


def check_inside(root: Path, path: Path, written: str) -> None:
    """Raise :class:`OutsideRootError` unless ``path``, with every symlink followed, lies inside ``root``.

    A table is data and may come from anyone: ``../../etc/passwd`` or a link to a private file must
    not be read (and its pixels trained on or cached) unless the user allows it explicitly.
    """
    real, base = Path(os.path.realpath(path)), Path(os.path.realpath(root))
    if real != base and base not in real.parents:
        raise OutsideRootError(
            f"image path {written!r} leads to {real}, outside the dataset folder {base}; move the file into "
            "the dataset, or allow it explicitly with data.allow_outside_root: true (--allow-outside-root)"
        )


def resolve_image_path(
    base: Path, relative: str, *, root: Path | None = None, allow_outside_root: bool = False
) -> Path | None:
    """``base / relative`` if it exists; otherwise the one path that matches it ignoring letter case.

    Releases made on case-insensitive file systems name ``Nel026.jpg`` a file stored as
    ``NEL026.JPG``; the fallback is logged so a user can fix the table. ``None`` when nothing matches.
    With ``root`` (the dataset folder), a path that leads outside it raises :class:`OutsideRootError`
    unless ``allow_outside_root``.
    """
    guard = root is not None and not allow_outside_root
    if guard:
        check_inside(root, base / relative, relative)
    found = _find_image(base, relative)
    if guard and found is not None:
        check_inside(root, found, relative)  # a case-insensitive match may pass through another link
    return found


def locate_images(
    images: Path | Mapping[str, Path],
    written: Mapping[str, str],
    *,
    root: Path,
    allow_outside_root: bool,
    where: str,
    problems: list[Problem],
) -> dict[str, Path] | None:
    """Each column's image (``written``: column -> path as the table gives it) under ``images``
    (one folder for every column, or column -> folder).

    A path that matches no file is kept as written (the image check reports it). ``None`` when a path
    leads outside ``root``; each such column is appended to ``problems`` as ``outside root`` at ``where``.
    """
    located: dict[str, Path] = {}
    for column, path in written.items():
        folder = images[column] if isinstance(images, Mapping) else images
        try:
            found = resolve_image_path(folder, path, root=root, allow_outside_root=allow_outside_root)
        except OutsideRootError as exc:
            problems.append(Problem("outside root", f"{where}, column {column!r}: {exc}"))
            continue
        located[column] = found or folder / path
    return located if len(located) == len(written) else None


def _find_image(base: Path, relative: str) -> Path | None:
    exact = base / relative
    if exact.is_file():
        return exact
    current = base
    for part in Path(relative).parts:
        candidate = current / part
        if candidate.exists():
            current = candidate
            continue
        if not current.is_dir():
            return None
        matches = [entry for entry in os.listdir(current) if entry.lower() == part.lower()]
        if len(matches) != 1:
            return None
        current = current / matches[0]
    if not current.is_file():
        return None
    log.warning("image %r not found with that exact letter case; using %s", relative, current)
    return current


def open_rgb(path: Path, draft_size: int | None) -> Image.Image:
    try:
        with Image.open(path, formats=SUPPORTED_FORMATS) as img:
            check_pixel_count(path, img.size)
            if draft_size is not None and img.format == "JPEG":
                # JPEG decodes at 1/2, 1/4 or 1/8 scale for free, never below the requested size.
                img.draft("RGB", (draft_size, draft_size))
            img.load()  # decode everything now: a truncated file fails here, not later
            return to_rgb8(img, path)
    except DataError:
        raise  # already names the file; the handlers below would prefix it a second time
    except FileNotFoundError:
        raise DataError(f"image file not found: {path}") from None
    except UnidentifiedImageError:
        raise DataError(
            f"cannot decode image {path}: not a supported image file ({', '.join(SUPPORTED_FORMATS)})"
        ) from None
    except Image.DecompressionBombError as exc:
        raise DataError(f"image {path} is too large to decode safely: {exc}") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"cannot decode image {path}: {exc}") from None


# Integer modes wider than 8 bits: PIL's convert("RGB") clips them at 255 (a 16-bit scan turns white).
_WIDE_INTEGER_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")


def to_rgb8(img: Image.Image, path: Path) -> Image.Image:
    """8-bit RGB of any supported mode, upright; 16-bit greyscale is rescaled (65535 -> 255), never clipped.

    The EXIF orientation is applied first: without it a portrait phone photo reaches the model on its side.
    """
    if img.getexif().get(ExifTags.Base.Orientation, 1) in range(2, 9):  # 1: already upright
        img = ImageOps.exif_transpose(img)
    if img.mode in _WIDE_INTEGER_MODES:
        values = np.asarray(img).astype(np.int64)
        if values.size and (values.min() < 0 or values.max() > 65535):
            raise DataError(
                f"cannot decode image {path}: {img.mode} pixels outside 0..65535 (min {values.min()}, "
                f"max {values.max()}); save it as 8- or 16-bit"
            )
        grey = ((values * 255 + 32767) // 65535).astype(np.uint8)
        return Image.fromarray(grey, "L").convert("RGB")
    if img.mode == "F":
        raise DataError(f"cannot decode image {path}: floating-point pixels (mode F) have no defined range")
    return img.convert("RGB")


# Modes of one grey channel (with or without alpha): convert("RGB") copies the grey level to R, G and B.
_GREY_MODES = ("1", "L", "LA", "La", "I;16", "I;16L", "I;16B", "I;16N", "I", "F")


def conversion_note(mode: str, image_format: str | None = None) -> str | None:
    """What decoding an image of PIL ``mode`` to 8-bit RGB changes, as a sentence; ``None`` for plain colour.

    The pixels are still used: the note tells the user why the answer may not be the one a colour photograph
    of the same lesion would get (the models are trained on 8-bit colour images).
    """
    kind = f" {image_format}" if image_format else ""
    if mode == "CMYK":
        return f"is a CMYK{kind}; it was converted to RGB"
    wide = mode in _WIDE_INTEGER_MODES or mode.endswith(";16")
    if mode in _GREY_MODES:
        depth = " with 16-bit (or wider) samples" if wide else ""
        return (
            f"is greyscale{depth} ({mode}); its grey level was copied to R, G and B. The model was trained on "
            "colour images: the answer may differ from the one for a colour image of the same lesion"
        )
    if wide:
        return f"has 16-bit (or wider) samples ({mode}); it was reduced to 8-bit RGB"
    return None


def image_note(path: str | os.PathLike) -> str | None:
    """:func:`conversion_note` for the file at ``path``, from its header alone; ``None`` if unreadable
    (decoding it reports that properly)."""
    try:
        with Image.open(path, formats=SUPPORTED_FORMATS) as img:
            return conversion_note(img.mode, img.format)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return None


def load_resized(path: str | os.PathLike, size: int) -> np.ndarray:
    """The image squashed to ``size`` x ``size`` uint8 RGB (aspect is not kept, as in the paper)."""
    img = open_rgb(Path(path), size)
    if img.size != (size, size):
        img = img.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=2.0)
    return np.array(img)  # writable: torch.from_numpy warns on read-only arrays


def verify_image(path: str | os.PathLike) -> str | None:
    """``None`` when the file decodes completely, else the reason it does not."""
    try:
        open_rgb(Path(path), None)
    except DataError as exc:
        return str(exc)
    return None


def augmentation_margin(size: int) -> int:
    """Extra pixels kept around the training size so zoom and rotation resample finer pixels."""
    return max(2, round(size / 8))
