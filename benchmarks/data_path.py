"""The data path: training pairs per second from original JPEGs, from the prepared cache, on the device.

A synthetic Derm7pt-format release with the pixel count of Derm7pt's typical 768 × 512 images (640 × 640) is
written to a temporary folder. The same training split is then read three ways:

- ``raw``: decode both original JPEGs and augment (albumentations), as without ``mmfuse data prepare``;
- ``cached``: the same augmentation on the prepared uint8 cache (``mmfuse data prepare``);
- ``device``: the cache as one uint8 tensor on the training device, augmented a batch at a time there
  (:class:`mmfuse.data.batch_augment.BatchAugmenter`), which is how a GPU is kept fed.

``raw`` and ``cached`` run in this process, so their rate is what one DataLoader worker delivers.
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from benchmarks.timing import Settings, stopwatch, synchronize
from mmfuse.data import build_dataset, load_cache, load_table, prepare_cache
from mmfuse.data.batch_augment import BatchAugmenter
from mmfuse.data.synth import synthesize
from mmfuse.presets import IMAGENET_MEAN, IMAGENET_STD

DERM7PT_SIDE = 640  # square images with the pixel count of Derm7pt's typical 768 x 512
IMG_SIZE = 224


def augmentation_backend() -> str:
    """albumentations (the default pipeline) where installed, else the torchvision backend."""
    return "albumentations" if importlib.util.find_spec("albumentations") else "torchvision"


def pairs_per_second(dataset, count: int) -> dict:
    """Read (decode + augment) ``count`` items in this process, cycling through the dataset."""
    start = time.perf_counter()
    for step in range(count):
        dataset[step % len(dataset)]
    seconds = time.perf_counter() - start
    return {"pairs": count, "seconds": round(seconds, 3), "pairs_per_s": round(count / seconds, 2)}


def decode_pairs_per_second(dataset, count: int) -> dict:
    """Only the pixels of both images (no augmentation): the part of the work the cache replaces."""
    start = time.perf_counter()
    for step in range(count):
        for modality in ("primary", "auxiliary"):
            dataset.load_pixels(step % len(dataset), modality)
    seconds = time.perf_counter() - start
    return {"pairs": count, "seconds": round(seconds, 3), "pairs_per_s": round(count / seconds, 2)}


def loader_pairs_per_second(dataset, workers: int, batches: int, batch: int = 24) -> dict:
    """The same through a DataLoader with ``workers`` processes (worker start-up excluded)."""
    loader = DataLoader(
        dataset, batch_size=batch, shuffle=True, num_workers=workers, persistent_workers=workers > 0
    )

    def endless():
        while True:
            yield from loader

    iterator = endless()
    next(iterator)  # workers started and warm
    start = time.perf_counter()
    pairs = sum(len(next(iterator)["index"]) for _ in range(batches))
    seconds = time.perf_counter() - start
    return {"workers": workers, "pairs": pairs, "pairs_per_s": round(pairs / seconds, 2)}


def device_pairs_per_second(cache, settings: Settings, batch: int, rounds: int) -> dict:
    """Augment batches of the uint8 cache where it lives on ``settings.device`` (both modalities)."""
    arrays = {
        m: torch.from_numpy(np.array(cache.array(m))).to(settings.device) for m in ("primary", "auxiliary")
    }
    augment = BatchAugmenter(train=True, img_size=IMG_SIZE, mean=IMAGENET_MEAN, std=IMAGENET_STD)
    generator = torch.Generator(device=settings.device).manual_seed(0)
    n = arrays["primary"].shape[0]
    batch = min(batch, n)

    def one_batch(step: int) -> None:
        rows = torch.arange(step * batch, (step + 1) * batch, device=settings.device) % n
        for array in arrays.values():
            augment(array.index_select(0, rows), generator)

    one_batch(0)  # warm-up: kernels, allocator
    synchronize(settings.device)
    start = time.perf_counter()
    for step in range(rounds):
        one_batch(step)
    synchronize(settings.device)
    seconds = time.perf_counter() - start
    return {"batch": batch, "pairs": batch * rounds, "pairs_per_s": round(batch * rounds / seconds, 2)}


def run(
    settings: Settings,
    *,
    cases: int | None = None,
    side: int = DERM7PT_SIDE,
    reads: int | None = None,
    workers: int | None = None,
) -> dict:
    """The ``data`` section: raw vs cached pairs/s per worker, through a DataLoader, and on the device.

    ``reads`` pairs are read from the originals (four times as many from the faster cache);
    ``workers`` DataLoader processes (default: none with ``quick``, else up to 8, one per core).
    """
    cases = cases or (60 if settings.quick else 150)
    reads = reads or (24 if settings.quick else 64)
    if workers is None:
        workers = 0 if settings.quick else min(8, os.cpu_count() or 1)
    with tempfile.TemporaryDirectory(prefix="mmfuse-bench-") as tmp:
        root = Path(tmp) / "release"
        with stopwatch() as synth_time:
            synthesize(root, cases=cases, size=side, seed=0)
        backend = augmentation_backend()
        config = {"format": "derm7pt", "root": str(root), "backend": backend}
        common = {"train": True, "img_size": IMG_SIZE, "mean": IMAGENET_MEAN, "std": IMAGENET_STD, "seed": 0}
        raw_set = build_dataset({**config, "cache": "off"}, "train", **common)
        raw_set[0]  # import and initialise the augmentation backend outside the timing
        raw = pairs_per_second(raw_set, reads)
        raw_decode = decode_pairs_per_second(raw_set, reads)

        records = [r for r in load_table(config).records if r is not None]
        with stopwatch() as prepare_time:
            prepare_cache(root, records, IMG_SIZE)
        cached_set = build_dataset({**config, "cache": "auto"}, "train", **common)
        if not cached_set.uses_cache:
            raise RuntimeError(f"the prepared cache under {root} was not picked up by build_dataset")
        cached_set[0]
        cached = pairs_per_second(cached_set, 4 * reads)
        cached_decode = decode_pairs_per_second(cached_set, 4 * reads)
        result = {
            "cases": cases,
            "source_side": side,
            "img_size": IMG_SIZE,
            "augmentation": backend,
            "synthesize_s": synth_time["seconds"],
            "prepare_s": prepare_time["seconds"],
            "pairs_per_s_raw": raw["pairs_per_s"],
            "pairs_per_s_cached": cached["pairs_per_s"],
            "speedup": round(cached["pairs_per_s"] / raw["pairs_per_s"], 2),
            "raw": raw,
            "cached": cached,
            "decode_only": {
                "pairs_per_s_raw": raw_decode["pairs_per_s"],
                "pairs_per_s_cached": cached_decode["pairs_per_s"],
                "speedup": round(cached_decode["pairs_per_s"] / raw_decode["pairs_per_s"], 1),
            },
        }
        if workers:
            batches = max(4, reads // 8)
            result["loader"] = {
                "raw": loader_pairs_per_second(raw_set, workers, batches),
                "cached": loader_pairs_per_second(cached_set, workers, 4 * batches),
            }
        result["device"] = {
            "device": settings.device.type,
            **device_pairs_per_second(load_cache(root, IMG_SIZE), settings, 24, 10 if settings.cuda else 3),
        }
    return result
