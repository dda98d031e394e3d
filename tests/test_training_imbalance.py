"""Class imbalance options: inverse-frequency loss weights and the class-balanced sampler."""

from __future__ import annotations

from collections import Counter

import pytest
import torch
import torch.nn.functional as F

from mmfuse.errors import RunConfigError
from mmfuse.tasks import TaskSpec
from mmfuse.training import resolve
from mmfuse.training.imbalance import ClassBalancedSampler, balanced_class_weights
from mmfuse.training.losses import multitask_loss

TASK = TaskSpec("DX", ("A", "B", "C"))


def test_balanced_weights_give_every_present_class_the_same_total_weight():
    labels = torch.tensor([[0]] * 6 + [[1]] * 2)  # C is absent from training
    weights = balanced_class_weights(labels, [TASK])["DX"]
    assert weights.tolist() == pytest.approx([8 / (2 * 6), 8 / (2 * 2), 0.0])
    assert float(weights[0] * 6) == pytest.approx(float(weights[1] * 2))


def test_weighted_loss_weighs_each_sample_by_its_class():
    logits = {"primary": {"DX": torch.randn(4, 3)}}
    labels = torch.tensor([[0], [0], [1], [2]])
    weights = {"DX": torch.tensor([0.5, 2.0, 1.0])}
    loss, _ = multitask_loss(logits, labels, [TASK], class_weights=weights)
    per_sample = F.cross_entropy(logits["primary"]["DX"], labels[:, 0], reduction="none")
    assert float(loss) == pytest.approx(float((per_sample * weights["DX"][labels[:, 0]]).sum() / 4), rel=1e-6)


def test_balanced_sampler_draws_classes_evenly_and_replays_each_epoch():
    classes = torch.tensor([0] * 90 + [1] * 9 + [2] * 1)
    sampler = ClassBalancedSampler(classes, seed=3)
    drawn = Counter()
    for epoch in range(40):
        sampler.set_epoch(epoch)
        drawn.update(int(classes[i]) for i in sampler)
    shares = [drawn[c] / sum(drawn.values()) for c in range(3)]
    assert shares == pytest.approx([1 / 3] * 3, abs=0.05)
    sampler.set_epoch(7)
    first = list(sampler)
    assert list(sampler) == first and len(first) == 100


def test_balanced_sampler_shards_the_same_draws_over_processes():
    classes = torch.tensor([0] * 7 + [1] * 3)
    whole = list(ClassBalancedSampler(classes, seed=1, num_replicas=1))
    shards = [list(ClassBalancedSampler(classes, seed=1, num_replicas=2, rank=r)) for r in range(2)]
    assert [i for pair in zip(*shards, strict=True) for i in pair] == whole


def test_unknown_imbalance_options_are_refused_by_name():
    for key, value in (("class_weights", "inverse"), ("sampler", "oversample")):
        with pytest.raises(RunConfigError, match=f"train.{key} must be one of"):
            resolve({"data": {"root": "x"}, "train": {key: value}})
