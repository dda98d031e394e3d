"""Fusion blocks: Eq. 1 exactly, and the interface contract for every registered block."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import mmfuse
import mmfuse.registry
from mmfuse.attention import effective_key_pool, spatial_attention


def eq1_transcription(block, primary: torch.Tensor, auxiliary: torch.Tensor) -> torch.Tensor:
    """Eq. 1 written out for one sample: D_refined = D_v · softmax(C_k C_qᵀ) + D (normalised over keys)."""
    out = []
    for d, c in zip(primary, auxiliary, strict=True):
        channels, height, width = d.shape
        ck = block.key(c[None])[0].reshape(channels, -1).T  # N x C
        cq = block.query(c[None])[0].reshape(channels, -1).T  # N x C
        dv = block.value(d[None])[0].reshape(channels, -1)  # C x N
        m = torch.softmax(ck @ cq.T, dim=0)  # M[i, j]: key i for output position j
        out.append((dv @ m).reshape(channels, height, width) + d)
    return torch.stack(out)


@pytest.mark.parametrize("attention", ["materialized", "sdpa", "chunked", "auto"])
def test_aab_equals_a_direct_transcription_of_eq1(attention):
    torch.manual_seed(0)
    block = mmfuse.registry.create_fusion("aab", 16, 8, attention=attention, max_key_tokens=None).double()
    primary, auxiliary = torch.randn(2, 16, 6, 5).double(), torch.randn(2, 8, 6, 5).double()
    refined, passed = block(primary, auxiliary)
    torch.testing.assert_close(refined, eq1_transcription(block, primary, auxiliary))
    assert passed is auxiliary


def test_projected_aab_is_eq1_on_the_auxiliary_map_taken_to_the_primary_width():
    torch.manual_seed(0)
    block = mmfuse.registry.create_fusion("aab", 16, 8, auxiliary_projection=True).double().eval()
    assert (block.key.in_channels, block.query.in_channels) == (16, 16)  # C and D both H×W×16
    primary, auxiliary = torch.randn(2, 16, 6, 5).double(), torch.randn(2, 8, 6, 5).double()
    refined, passed = block(primary, auxiliary)
    torch.testing.assert_close(refined, eq1_transcription(block, primary, block.projection(auxiliary)))
    assert passed is auxiliary
    assert mmfuse.registry.create_fusion("aab", 16, 8).projection is None  # the default reads the auxiliary width


def test_attention_implementations_agree():
    torch.manual_seed(0)
    q, k, v = torch.randn(2, 8, 7, 7), torch.randn(2, 8, 7, 7), torch.randn(2, 12, 7, 7)
    for scale in (1.0, None):
        exact = spatial_attention(q, k, v, scale=scale, implementation="materialized")
        torch.testing.assert_close(spatial_attention(q, k, v, scale=scale, implementation="sdpa"), exact)
        # 49 queries in blocks of 10: the last block is partial, each softmax still spans all keys.
        chunked = spatial_attention(q, k, v, scale=scale, implementation="chunked", chunk_size=10)
        torch.testing.assert_close(chunked, exact)


def test_pooled_keys_attend_to_average_pooled_keys_and_values():
    torch.manual_seed(0)
    q, k, v = torch.randn(1, 4, 8, 8), torch.randn(1, 4, 8, 8), torch.randn(1, 6, 8, 8)
    pooled = spatial_attention(q, k, v, key_pool=2, implementation="materialized")
    weights = torch.softmax(q.flatten(2).transpose(1, 2) @ F.avg_pool2d(k, 2).flatten(2), dim=-1)
    expected = (weights @ F.avg_pool2d(v, 2).flatten(2).transpose(1, 2)).transpose(1, 2).reshape(1, 6, 8, 8)
    torch.testing.assert_close(pooled, expected)
    assert effective_key_pool(784, max_key_tokens=196) == 2
    assert effective_key_pool(196, max_key_tokens=196) == 1
    assert effective_key_pool(3136, max_key_tokens=196) == 4


def test_default_aab_is_exact_at_every_size_and_pooling_is_opt_in():
    torch.manual_seed(0)
    default = mmfuse.registry.create_fusion("aab", 8, 4)
    exact = mmfuse.registry.create_fusion("aab", 8, 4, attention="materialized", max_key_tokens=None)
    pooled = mmfuse.registry.create_fusion("aab", 8, 4, max_key_tokens=196)
    exact.load_state_dict(default.state_dict())
    pooled.load_state_dict(default.state_dict())
    primary, auxiliary = torch.randn(1, 8, 28, 28), torch.randn(1, 4, 28, 28)
    torch.testing.assert_close(default(primary, auxiliary)[0], exact(primary, auxiliary)[0])
    assert not torch.allclose(pooled(primary, auxiliary)[0], exact(primary, auxiliary)[0], atol=1e-3)


def test_bad_attention_options_fail_at_construction():
    with pytest.raises(ValueError, match="unknown attention implementation 'flash2'"):
        mmfuse.registry.create_fusion("aab", 8, 8, attention="flash2")
    with pytest.raises(TypeError, match="unknown options"):
        mmfuse.registry.create_fusion("concat", 8, 8, attention="sdpa")


@settings(max_examples=25, deadline=None)
@given(
    name=st.sampled_from(["aab", "bab", "concat", "gated"]),
    primary_channels=st.integers(1, 24),
    auxiliary_channels=st.integers(1, 24),
    primary_size=st.tuples(st.integers(1, 9), st.integers(1, 9)),
    auxiliary_size=st.tuples(st.integers(1, 9), st.integers(1, 9)),
)
def test_every_block_keeps_shapes_and_lets_gradients_reach_the_auxiliary(
    name, primary_channels, auxiliary_channels, primary_size, auxiliary_size
):
    block = mmfuse.registry.create_fusion(name, primary_channels, auxiliary_channels)
    primary = torch.randn(2, primary_channels, *primary_size, requires_grad=True)
    auxiliary = torch.randn(2, auxiliary_channels, *auxiliary_size, requires_grad=True)
    refined, auxiliary_out = block(primary, auxiliary)
    assert refined.shape == primary.shape
    assert auxiliary_out.shape == auxiliary.shape
    if name in ("aab", "bab"):
        # Perturb so the gradient is not accidentally zero (a softmax over one key is constant).
        grad = torch.autograd.grad(refined.square().sum(), auxiliary, allow_unused=True)[0]
        if primary_size[0] * primary_size[1] > 1:
            assert grad is not None and torch.isfinite(grad).all()
            assert grad.abs().sum() > 0


def test_bab_refines_both_modalities_and_aab_only_the_primary():
    torch.manual_seed(0)
    primary, auxiliary = torch.randn(1, 8, 5, 5), torch.randn(1, 4, 10, 10)
    _, aab_aux = mmfuse.registry.create_fusion("aab", 8, 4)(primary, auxiliary)
    _, bab_aux = mmfuse.registry.create_fusion("bab", 8, 4)(primary, auxiliary)
    assert torch.equal(aab_aux, auxiliary)
    assert bab_aux.shape == auxiliary.shape and not torch.allclose(bab_aux, auxiliary)


def test_aab_has_fewer_parameters_than_bab():
    def count(name):
        return sum(p.numel() for p in mmfuse.registry.create_fusion(name, 384, 112).parameters())

    assert count("concat") == 0 < count("aab") < count("bab")
