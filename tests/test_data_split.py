"""The fallback split: disjoint, complete, stratified and deterministic."""

from __future__ import annotations

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from mmfuse.data.split import DEFAULT_RATIOS, stratified_split

strata_lists = st.lists(st.sampled_from(["BCC", "NEV", "MEL", "MISC", "SK"]), min_size=0, max_size=300)


@settings(max_examples=60, deadline=None)
@given(strata=strata_lists, seed=st.integers(0, 2**32 - 1))
def test_split_is_disjoint_complete_and_stratified(strata, seed):
    splits = stratified_split(strata, seed=seed)
    positions = [i for part in splits.values() for i in part]
    assert sorted(positions) == list(range(len(strata)))  # complete and disjoint
    for stratum, total in Counter(strata).items():
        for name, ratio in DEFAULT_RATIOS.items():
            got = sum(strata[i] == stratum for i in splits[name])
            assert abs(got - ratio * total) <= 1


@given(strata=strata_lists, seed=st.integers(0, 1000))
def test_split_depends_only_on_its_inputs(strata, seed):
    assert stratified_split(strata, seed=seed) == stratified_split(list(strata), seed=seed)


def test_official_derm7pt_proportions_are_kept():
    from mmfuse.data.formats.derm7pt import OFFICIAL_SPLIT_RATIOS

    splits = stratified_split(["NEV"] * 1011, OFFICIAL_SPLIT_RATIOS)
    assert [len(splits[n]) for n in ("train", "valid", "test")] == [413, 203, 395]


def test_custom_ratios():
    splits = stratified_split(["a"] * 10, {"train": 0.8, "test": 0.2}, seed=1)
    assert [len(splits["train"]), len(splits["test"])] == [8, 2]
