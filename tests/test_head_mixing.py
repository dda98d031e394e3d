"""Eq. 4's one mixing function: its properties over random heads, weights and missing inputs."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mmfuse.head_mixing import (
    HEAD_COMBINE_MODES,
    HEADS,
    check_head_weights,
    check_temperatures,
    head_probabilities,
    mix_heads,
    mix_logits,
)


@st.composite
def cases(draw, views: bool = False):
    """Per-head logits ``{head: {"T": [(V,) N, C]}}`` (float64), weights on the simplex, present rows."""
    rows, classes = draw(st.integers(1, 6)), draw(st.integers(2, 5))
    shape = ((draw(st.integers(1, 3)),) if views else ()) + (rows, classes)
    seed = draw(st.integers(0, 2**31 - 1))
    generator = torch.Generator().manual_seed(seed)
    logits = {h: {"T": 3 * torch.randn(shape, generator=generator, dtype=torch.float64)} for h in HEADS}
    raw = draw(st.lists(st.integers(0, 20), min_size=3, max_size=3).filter(lambda w: sum(w) > 0))
    weights = {h: w / sum(raw) for h, w in zip(HEADS, raw, strict=True)}
    present = torch.tensor(draw(st.lists(st.booleans(), min_size=rows, max_size=rows)))
    return logits, weights, present


def _probabilities(logits):
    return {h: {t: z.softmax(-1) for t, z in per.items()} for h, per in logits.items()}


@settings(max_examples=60)
@given(cases())
def test_equal_weights_over_probabilities_are_the_plain_mean(case):
    logits, _, _ = case
    p = _probabilities(logits)
    mixed = mix_heads(p, dict.fromkeys(HEADS, 1 / 3))["T"]
    torch.testing.assert_close(mixed, sum(p[h]["T"] for h in HEADS) / 3)
    torch.testing.assert_close(mixed.sum(-1), torch.ones(mixed.shape[0], dtype=mixed.dtype))


@settings(max_examples=60)
@given(cases(), st.sampled_from(HEAD_COMBINE_MODES))
def test_a_zero_weight_head_has_no_effect(case, combine):
    logits, weights, _ = case
    source = logits if combine == "logits" else _probabilities(logits)
    zero = min(HEADS, key=lambda h: weights[h])
    weights = {h: (0.0 if h == zero else w) for h, w in weights.items()}
    if sum(weights.values()) == 0:
        return
    garbage = {**source, zero: {"T": torch.full_like(source[zero]["T"], 1e6)}}
    torch.testing.assert_close(
        mix_heads(garbage, weights, combine=combine)["T"], mix_heads(source, weights, combine=combine)["T"]
    )


@settings(max_examples=60)
@given(cases(views=True))
def test_logits_mode_is_the_softmax_of_the_weighted_mean_of_logits_per_view(case):
    logits, weights, _ = case
    mixed = mix_heads(logits, weights, combine="logits")["T"]
    expected = sum(weights[h] * logits[h]["T"] for h in HEADS).softmax(-1)
    torch.testing.assert_close(mixed, expected)


@settings(max_examples=60)
@given(cases(), st.sampled_from(HEAD_COMBINE_MODES))
def test_rows_without_the_auxiliary_image_get_the_primary_head_alone(case, combine):
    logits, weights, present = case
    source = logits if combine == "logits" else _probabilities(logits)
    mixed = mix_heads(source, weights, present, combine=combine)["T"]
    everyone = mix_heads(source, weights, combine=combine)["T"]
    primary = logits["primary"]["T"].softmax(-1)
    torch.testing.assert_close(mixed[~present], primary[~present])
    torch.testing.assert_close(mixed[present], everyone[present])


@settings(max_examples=60)
@given(cases(), st.sampled_from(HEAD_COMBINE_MODES))
def test_a_head_absent_from_a_row_is_left_out_and_the_others_renormalised(case, combine):
    logits, weights, present = case
    source = logits if combine == "logits" else _probabilities(logits)
    mixed = mix_heads(source, weights, head_present={"fusion": present}, combine=combine)["T"]
    without = {h: source[h] for h in ("primary", "auxiliary")}
    torch.testing.assert_close(mixed[~present], mix_heads(without, weights, combine=combine)["T"][~present])
    torch.testing.assert_close(mixed[present], mix_heads(source, weights, combine=combine)["T"][present])


def test_heads_present_with_zero_total_weight_share_equally():
    p = {"primary": {"T": torch.tensor([[1.0, 0.0]])}}
    torch.testing.assert_close(
        mix_heads(p, {"primary": 0.0, "auxiliary": 0.5, "fusion": 0.5})["T"], p["primary"]["T"]
    )
    both = {**p, "fusion": {"T": torch.tensor([[0.0, 1.0]])}}
    mixed = mix_heads(
        both, {"primary": 0.0, "auxiliary": 1.0, "fusion": 0.0}, head_present={"fusion": torch.tensor([True])}
    )
    torch.testing.assert_close(mixed["T"], torch.tensor([[0.5, 0.5]]))


def test_mix_logits_divides_by_the_temperatures_before_mixing():
    logits = {
        h: {"T": torch.randn(4, 3, generator=torch.Generator().manual_seed(i))} for i, h in enumerate(HEADS)
    }
    temperatures = {"fusion": {"T": 2.0}}
    weights = {"primary": 0.2, "auxiliary": 0.3, "fusion": 0.5}
    scaled = {**logits, "fusion": {"T": logits["fusion"]["T"] / 2.0}}
    torch.testing.assert_close(
        mix_logits(logits, weights, temperatures=temperatures),
        mix_heads(head_probabilities(scaled), weights),
    )
    torch.testing.assert_close(
        mix_logits(logits, weights, combine="logits", temperatures=temperatures),
        mix_heads(scaled, weights, combine="logits"),
    )


def test_bad_state_is_refused_by_name():
    with pytest.raises(ValueError, match="head_combine must be one of"):
        mix_heads({"primary": {"T": torch.ones(1, 2)}}, dict.fromkeys(HEADS, 1 / 3), combine="votes")
    with pytest.raises(ValueError, match=r"head weights miss \['fusion'\]"):
        check_head_weights({"primary": 0.5, "auxiliary": 0.5})
    assert check_head_weights({"fusion": 0.5, "primary": 0.25, "auxiliary": 0.25}) == [0.25, 0.25, 0.5]
    with pytest.raises(ValueError, match="unknown task 'X'"):
        check_temperatures({"fusion": {"X": 1.0}}, {"T"})
    assert check_temperatures(None, {"T"}) is None
