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


def grouped_stratified_folds(
    strata: Sequence[str], groups: Sequence[str], folds: int, *, seed: int = 0
) -> list[int]:
    """The fold (0 .. ``folds``-1) of each position: a group never straddles two folds, strata are spread.

    A group takes the stratum of its first member. Within each stratum (rarest first) the groups, in a
    seeded order, go one at a time to the fold holding the fewest groups of that stratum, then the fewest
    cases, then the lowest index: each fold's share of a stratum differs from the others' by at most one
    group, so a class with fewer groups than folds lies in as many folds as it has groups.
    """
    if folds < 2:
        raise DataError(f"cross-validation needs at least 2 folds, got {folds}")
    members: dict[str, list[int]] = defaultdict(list)
    for position, group in enumerate(groups):
        members[group].append(position)
    if folds > len(members):
        raise DataError(f"{folds} folds need at least {folds} groups; the data has {len(members)}")
    by_stratum: dict[str, list[str]] = defaultdict(list)
    for group, positions in members.items():
        by_stratum[strata[positions[0]]].append(group)
    rng = np.random.default_rng(seed)
    cases = [0] * folds
    fold_of: dict[str, int] = {}
    for stratum in sorted(by_stratum, key=lambda s: (len(by_stratum[s]), s)):
        ordered = sorted(by_stratum[stratum])
        in_stratum = [0] * folds
        for index in rng.permutation(len(ordered)):
            group = ordered[index]
            fold = min(range(folds), key=lambda f: (in_stratum[f], cases[f], f))
            fold_of[group] = fold
            in_stratum[fold] += 1
            cases[fold] += len(members[group])
    return [fold_of[group] for group in groups]


def cross_validation_splits(
    strata: Sequence[str],
    groups: Sequence[str],
    folds: int,
    fold: int,
    *,
    seed: int = 0,
    valid_share: float = 0.125,
) -> dict[str, list[int]]:
    """Fold ``fold``'s train / valid / test positions: test is that fold; valid is carved, grouped and
    stratified, from the other folds' groups (about ``valid_share`` of all cases); the rest is train."""
    if not 0 <= fold < folds:
        raise DataError(f"fold must lie in [0, {folds}), got {fold}")
    assignment = grouped_stratified_folds(strata, groups, folds, seed=seed)
    rest = [i for i, f in enumerate(assignment) if f != fold]
    parts = max(2, round((folds - 1) / folds / valid_share))
    inner = grouped_stratified_folds(
        [strata[i] for i in rest],
        [groups[i] for i in rest],
        min(parts, len(set(groups[i] for i in rest))),
        seed=seed + 1 + fold,
    )
    valid = {i for i, part in zip(rest, inner, strict=True) if part == 0}
    return {
        "train": [i for i in rest if i not in valid],
        "valid": sorted(valid),
        "test": [i for i, f in enumerate(assignment) if f == fold],
    }
