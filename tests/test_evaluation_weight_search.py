"""The head-weight search: weights on the simplex, never worse than a single head, Eq. 4 as the model computes it."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import mmfuse
from mmfuse.evaluation.metrics import objective
from mmfuse.evaluation.weight_search import search_head_weights, simplex_grid
from mmfuse.head_mixing import HEADS, mix_heads
from mmfuse.tasks import TaskSpec

TASKS = (TaskSpec("A", ("ABS", "X", "Y")), TaskSpec("B", ("ABS", "PRS")))


def _head_probabilities(seed: int, n: int):
    rng = np.random.default_rng(seed)
    labels = torch.stack([torch.tensor(rng.integers(0, t.num_classes, size=n)) for t in TASKS], dim=1)
    probs = {}
    for h, noise in zip(HEADS, rng.uniform(0.3, 3.0, size=3), strict=True):
        probs[h] = {}
        for i, t in enumerate(TASKS):
            signal = torch.nn.functional.one_hot(labels[:, i], t.num_classes).float()
            logits = signal + noise * torch.tensor(rng.normal(size=(n, t.num_classes)), dtype=torch.float32)
            probs[h][t.name] = logits.softmax(1)
    present = torch.tensor(rng.random(n) > 0.2)
    # As the evaluator stores them: rows without an auxiliary image carry the primary answer everywhere.
    for h in ("auxiliary", "fusion"):
        for t in TASKS:
            probs[h][t.name] = torch.where(present.view(-1, 1), probs[h][t.name], probs["primary"][t.name])
    return probs, labels, present


@pytest.mark.parametrize("step", [0.05, 0.1, 0.25, 1.0])
def test_simplex_grid_covers_the_simplex(step):
    grid = simplex_grid(step)
    n = round(1 / step)
    assert len(grid) == (n + 1) * (n + 2) // 2
    assert all(min(p) >= 0 and math.isclose(sum(p), 1.0, abs_tol=1e-12) for p in grid)
    assert {(1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)} <= set(grid)


def test_step_that_does_not_divide_one_is_refused():
    with pytest.raises(ValueError, match="divide 1"):
        simplex_grid(0.3)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), objective_name=st.sampled_from(["avg_auc", "avg_acc"]))
def test_search_result_lies_on_the_simplex_and_beats_every_single_head(seed, objective_name):
    probs, labels, present = _head_probabilities(seed, n=40)
    result = search_head_weights(
        probs, labels, TASKS, auxiliary_present=present, step=0.1, objective=objective_name
    )
    weights = [result.weights[h] for h in HEADS]
    assert min(weights) >= 0 and sum(weights) == pytest.approx(1.0)
    for head in HEADS:
        single = objective(probs[head], labels, TASKS, objective_name)
        assert result.head_scores[head] == pytest.approx(single, abs=1e-12)
        assert result.score >= single
    assert result.score == pytest.approx(
        objective(mix_heads(probs, result.weights, present), labels, TASKS, objective_name), abs=1e-12
    )


def test_the_search_mixes_heads_as_the_model_predicts(tiny_model_kwargs):
    model = mmfuse.build_model("ammfm-swin", **tiny_model_kwargs)
    _, _, present = _head_probabilities(3, n=10)
    probs = {h: {t.name: torch.rand(10, t.num_classes).softmax(1) for t in model.tasks} for h in HEADS}
    weights = {"primary": 0.5, "auxiliary": 0.2, "fusion": 0.3}
    model.set_head_weights(weights)
    got = model.mix_head_probabilities(probs, present)
    for task in got:
        expected = sum(w * probs[h][task] for h, w in weights.items())
        torch.testing.assert_close(got[task][present], expected[present])
        torch.testing.assert_close(got[task][~present], probs["primary"][task][~present])
