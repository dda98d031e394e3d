"""Eq. 2–3: the training loss is the sum over heads and tasks of cross-entropy."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mmfuse.model import HEADS
from mmfuse.tasks import DERM7PT_TASKS
from mmfuse.training.losses import multitask_loss


def _random_batch(batch: int, seed: int):
    generator = torch.Generator().manual_seed(seed)
    logits = {
        head: {
            t.name: torch.randn(batch, t.num_classes, generator=generator, requires_grad=True)
            for t in DERM7PT_TASKS
        }
        for head in HEADS
    }
    labels = torch.stack(
        [torch.randint(t.num_classes, (batch,), generator=generator) for t in DERM7PT_TASKS], dim=1
    )
    return logits, labels


def _cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-sample -log softmax(logits)[label], written out."""
    return -(logits.log_softmax(-1).gather(1, labels[:, None]))[:, 0]


@settings(max_examples=30, deadline=None)
@given(batch=st.integers(1, 9), seed=st.integers(0, 2**16))
def test_loss_is_the_sum_over_heads_and_tasks_of_cross_entropy(batch, seed):
    logits, labels = _random_batch(batch, seed)
    total, per_head = multitask_loss(logits, labels, DERM7PT_TASKS)
    expected = {
        head: sum(
            _cross_entropy(logits[head][t.name], labels[:, i]).mean() for i, t in enumerate(DERM7PT_TASKS)
        )
        for head in HEADS
    }
    for head in HEADS:
        torch.testing.assert_close(per_head[head], expected[head])
    torch.testing.assert_close(total, sum(expected.values()))


@settings(max_examples=30, deadline=None)
@given(batch=st.integers(2, 9), seed=st.integers(0, 2**16), data=st.data())
def test_missing_auxiliary_samples_train_only_the_primary_head(batch, seed, data):
    logits, labels = _random_batch(batch, seed)
    present = torch.tensor(data.draw(st.lists(st.booleans(), min_size=batch, max_size=batch)))
    total, per_head = multitask_loss(logits, labels, DERM7PT_TASKS, present)
    for head in HEADS:
        keep = torch.ones(batch, dtype=torch.bool) if head == "primary" else present
        expected = sum(
            (_cross_entropy(logits[head][t.name], labels[:, i]) * keep).sum() / batch
            for i, t in enumerate(DERM7PT_TASKS)
        )
        torch.testing.assert_close(per_head[head], expected)
    total.backward()
    for head in ("auxiliary", "fusion"):
        for task in DERM7PT_TASKS:
            grad = logits[head][task.name].grad
            assert torch.all(grad[~present] == 0)
    assert all(logits["primary"][t.name].grad.abs().sum() > 0 for t in DERM7PT_TASKS)
