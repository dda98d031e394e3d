"""Class imbalance: inverse-frequency class weights for the loss, and a class-balanced sampler.

Both read the training split's labels only (the first task's for the sampler). ``class_weights:
balanced`` weighs class c of a task by ``n / (C * n_c)`` (scikit-learn's "balanced"), so every class
contributes the same total weight; ``sampler: balanced`` draws each epoch's cases with replacement, a
case of class c with probability proportional to ``1 / n_c``, so batches hold every class about as often.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import DistributedSampler, Sampler

from mmfuse.tasks import TaskSpec

CLASS_WEIGHTS = (None, "balanced")
SAMPLERS = ("shuffle", "balanced")


def balanced_class_weights(labels: torch.Tensor, tasks: Sequence[TaskSpec]) -> dict[str, torch.Tensor]:
    """Per task, ``n / (C * n_c)`` for each class present in ``labels`` (``[N, T]``); 0 for a class absent."""
    weights = {}
    for column, task in enumerate(tasks):
        counts = torch.bincount(labels[:, column], minlength=task.num_classes).double()
        present = counts > 0
        weight = torch.zeros(task.num_classes, dtype=torch.float64)
        weight[present] = labels.shape[0] / (int(present.sum()) * counts[present])
        weights[task.name] = weight.float()
    return weights


class ClassBalancedSampler(Sampler[int]):
    """Each epoch, ``len(classes)`` draws with replacement, a case of class c with probability ∝ ``1 / n_c``.

    Like :class:`~torch.utils.data.DistributedSampler`: seeded by ``(seed, epoch)`` (call
    :meth:`set_epoch`), and each of ``num_replicas`` processes takes every ``num_replicas``-th draw.
    """

    def __init__(self, classes: torch.Tensor, *, seed: int = 0, num_replicas: int = 1, rank: int = 0) -> None:
        self.classes = classes.long()
        counts = torch.bincount(self.classes).double()
        self.weights = 1.0 / counts[self.classes]
        self.seed, self.epoch = int(seed), 0
        self.num_replicas, self.rank = num_replicas, rank
        self.num_samples = -(-len(self.classes) // num_replicas)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.num_samples

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator()
        generator.manual_seed(self.seed + self.epoch)
        total = self.num_samples * self.num_replicas
        draws = torch.multinomial(self.weights, total, replacement=True, generator=generator)
        return iter(draws[self.rank : total : self.num_replicas].tolist())


def training_sampler(dataset, *, kind: str, seed: int, num_replicas: int, rank: int) -> Sampler[int]:
    """The sampler ``train.sampler`` names: a seeded shuffle, or :class:`ClassBalancedSampler` by the first task."""
    if kind == "balanced":
        classes = dataset.label_matrix()[:, 0]
        return ClassBalancedSampler(classes, seed=seed, num_replicas=num_replicas, rank=rank)
    return DistributedSampler(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed)
