"""A deterministic split of a labelled table, stratified by one label (used when no split files exist)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence

import numpy as np

from mmfuse.errors import DataError

SPLIT_NAMES: tuple[str, ...] = ("train", "valid", "test")

# Roughly 40 / 20 / 40: a test split as large as the training split, as in common paired benchmarks.
DEFAULT_RATIOS: Mapping[str, float] = {"train": 0.4, "valid": 0.2, "test": 0.4}


def stratified_split(
    strata: Sequence[str], ratios: Mapping[str, float] = DEFAULT_RATIOS, *, seed: int = 0
) -> dict[str, list[int]]:
    """Row positions per split; every stratum is cut in the given proportions (within one case).

    Cuts use rounded cumulative proportions, so each split's share of a stratum differs from its
    ratio by less than one case, and the result depends only on ``strata``, ``ratios`` and ``seed``.
    """
    total = float(sum(ratios.values()))
    if total <= 0 or any(r < 0 for r in ratios.values()):
        raise DataError(f"split ratios must be non-negative and not all zero, got {dict(ratios)}")
    names = list(ratios)
    by_stratum: dict[str, list[int]] = defaultdict(list)
    for position, stratum in enumerate(strata):
        by_stratum[stratum].append(position)
    out: dict[str, list[int]] = {name: [] for name in names}
    rng = np.random.default_rng(seed)
    for stratum in sorted(by_stratum):
        members = np.array(by_stratum[stratum])
        members = members[rng.permutation(len(members))]
        cuts = np.rint(np.cumsum([ratios[n] / total for n in names]) * len(members)).astype(int)
        start = 0
        for name, stop in zip(names, cuts, strict=True):
            out[name].extend(int(i) for i in members[start:stop])
            start = stop
    return {name: sorted(positions) for name, positions in out.items()}
