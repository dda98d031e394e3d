"""The prepared cache: every image decoded and resized once, stored as two uint8 arrays.

Layout under the dataset root::

    .mmfuse-cache/<S>/primary.npy     uint8 [N, S', S', 3]   (S' = S + augmentation margin)
    .mmfuse-cache/<S>/auxiliary.npy   uint8 [N, S', S', 3]   (zeros where the case has no auxiliary image)
    .mmfuse-cache/<S>/manifest.json   S, margin, and path, byte size and mtime of every source image

The arrays are plain ``.npy`` files: ``np.load(..., mmap_mode="r")`` maps them without reading, and
one ``torch.from_numpy(np.load(...))`` puts a whole modality on a GPU. A cache is used only while
every source image still has the recorded size and mtime; it is written to a temporary folder and
renamed into place, so an interrupted ``prepare`` never leaves a half-written cache behind.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mmfuse.data.errors import DataError
from mmfuse.data.images import augmentation_margin, load_resized
from mmfuse.data.records import CaseRecord

CACHE_DIR = ".mmfuse-cache"
MANIFEST = "manifest.json"
FORMAT_VERSION = 2  # 2: pixels turned upright by their EXIF orientation (1: as stored)


def cache_dir(root: str | os.PathLike, size: int) -> Path:
    return Path(root) / CACHE_DIR / str(int(size))


def _relative(root: Path, path: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return path.resolve().as_posix()


def _source_entry(root: Path, path: Path | None) -> dict | None:
    if path is None:
        return None
    stat = path.stat()
    return {"path": _relative(root, path), "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _unchanged(root: Path, entry: dict | None) -> bool:
    if entry is None:
        return True
    path = Path(entry["path"]) if os.path.isabs(entry["path"]) else root / entry["path"]
    try:
        stat = path.stat()
    except OSError:
        return False
    return stat.st_size == entry["bytes"] and stat.st_mtime_ns == entry["mtime_ns"]


@dataclass
class PreparedCache:
    """A fresh cache. Arrays are memory-mapped on first use (and re-mapped, not copied, in workers)."""

    directory: Path
    size: int
    margin: int
    entries: list[dict]
    _arrays: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def side(self) -> int:
        return self.size + self.margin

    def array(self, modality: str) -> np.ndarray:
        """``primary`` or ``auxiliary`` as a read-only memory map [N, S', S', 3]."""
        if modality not in self._arrays:
            self._arrays[modality] = np.load(self.directory / f"{modality}.npy", mmap_mode="r")
        return self._arrays[modality]

    def row_index(self, root: Path) -> dict[tuple[str, str | None], int]:
        """(primary path, auxiliary path) relative to ``root`` -> cache row."""
        return {
            (e["primary"]["path"], e["auxiliary"]["path"] if e["auxiliary"] else None): i
            for i, e in enumerate(self.entries)
        }

    def key_of(self, root: Path, record: CaseRecord) -> tuple[str, str | None]:
        aux = _relative(root, record.auxiliary_path) if record.auxiliary_path is not None else None
        return _relative(root, record.primary_path), aux

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_arrays"] = {}  # never pickle the mapped arrays into DataLoader workers
        return state


def load_cache(root: str | os.PathLike, size: int) -> PreparedCache | None:
    """The cache for ``size`` under ``root``, or ``None`` if there is none or any source image changed."""
    root = Path(root)
    directory = cache_dir(root, size)
    try:
        manifest = json.loads((directory / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    if (
        not isinstance(manifest, dict)
        or manifest.get("version") != FORMAT_VERSION
        or manifest.get("size") != int(size)
    ):
        return None
    entries, margin = manifest.get("entries"), manifest.get("margin")
    if not isinstance(entries, list) or not isinstance(margin, int) or margin < 0:
        raise _damaged(directory, f"{MANIFEST} lacks a list of entries or a margin")
    try:
        if not all(_unchanged(root, e["primary"]) and _unchanged(root, e["auxiliary"]) for e in entries):
            return None
    except (KeyError, TypeError):
        raise _damaged(directory, f"{MANIFEST} has malformed entries") from None
    if not all((directory / f"{m}.npy").is_file() for m in ("primary", "auxiliary")):
        return None
    cache = PreparedCache(directory, int(size), margin, entries)
    expected = (len(entries), cache.side, cache.side, 3)
    for modality in ("primary", "auxiliary"):
        try:
            array = cache.array(modality)
        except (OSError, ValueError) as exc:
            raise _damaged(directory, f"{modality}.npy cannot be read: {exc}") from None
        if array.shape != expected or array.dtype != np.uint8:
            raise _damaged(
                directory,
                f"{modality}.npy holds {array.dtype} {tuple(array.shape)} but {MANIFEST} describes uint8 {expected} "
                f"({len(entries)} cases at {cache.side} px)",
            )
    return cache


def _damaged(directory: Path, reason: str) -> DataError:
    # A cache that disagrees with its manifest would feed other cases' pixels (or fail on an index).
    return DataError(
        f"the prepared cache {directory} is damaged: {reason}; delete that folder or run "
        "`mmfuse data prepare` again (or set data.cache: off)"
    )


def prepare_cache(
    root: str | os.PathLike,
    records: Sequence[CaseRecord],
    size: int,
    *,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Decode and resize every record's images once; returns the cache folder.

    ``workers`` threads decode in parallel (the decoder releases the GIL). A bad image raises a
    :class:`DataError` naming the file and the case, and leaves any previous cache untouched.
    """
    root = Path(root)
    margin = augmentation_margin(size)
    side = size + margin
    final = cache_dir(root, size)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{size}-", dir=final.parent))
    try:
        shape = (len(records), side, side, 3)
        arrays = {
            m: np.lib.format.open_memmap(tmp / f"{m}.npy", mode="w+", dtype=np.uint8, shape=shape)
            for m in ("primary", "auxiliary")
        }

        def fill(i: int) -> None:
            record = records[i]
            for modality, path in (("primary", record.primary_path), ("auxiliary", record.auxiliary_path)):
                if path is None:
                    continue
                try:
                    arrays[modality][i] = load_resized(path, side)
                except DataError as exc:
                    raise DataError(f"{record.describe()}: {exc}") from None

        with ThreadPoolExecutor(max_workers=workers or min(8, os.cpu_count() or 1)) as pool:
            for done, _ in enumerate(pool.map(fill, range(len(records))), start=1):
                if progress is not None:
                    progress(done, len(records))
        for array in arrays.values():
            array.flush()
        arrays.clear()  # close the maps before the rename
        manifest = {
            "version": FORMAT_VERSION,
            "size": int(size),
            "margin": margin,
            "entries": [
                {
                    "primary": _source_entry(root, r.primary_path),
                    "auxiliary": _source_entry(root, r.auxiliary_path),
                }
                for r in records
            ],
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest))
        _replace_dir(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def _replace_dir(new: Path, final: Path) -> None:
    old = None
    if final.exists():
        old = final.with_name(f".old-{final.name}-{os.getpid()}")
        os.replace(final, old)
    os.replace(new, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
