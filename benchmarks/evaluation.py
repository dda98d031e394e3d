"""The cost of trusting a result: bootstrap intervals and a paired comparison on a Derm7pt-sized test split.

Synthetic probabilities for the 8 Derm7pt tasks (24 classes) and three heads plus the final prediction, at the
size of Derm7pt's test split (395 cases). Timed: the metrics of one split without intervals, with 1000
bootstrap resamples for every head, and ``compare_runs`` (1000 paired resamples and DeLong's test for the 17
scored classes). The promise (issue: "vectorised so it costs seconds") is that intervals add seconds, not
minutes, to an evaluation.
"""

from __future__ import annotations

import time

import torch

DERM7PT_TEST_CASES = 395


def _predictions(cases: int, seed: int, labels: torch.Tensor | None = None):
    from mmfuse.evaluation.inference import Predictions
    from mmfuse.tasks import DERM7PT_TASKS

    generator = torch.Generator().manual_seed(seed)
    if labels is None:
        labels = torch.stack(
            [torch.randint(0, t.num_classes, (cases,), generator=generator) for t in DERM7PT_TASKS], 1
        )
    heads = {}
    for head in ("primary", "auxiliary", "fusion"):
        heads[head] = {}
        for i, task in enumerate(DERM7PT_TASKS):
            logits = torch.randn(cases, task.num_classes, generator=generator)
            logits[torch.arange(cases), labels[:, i]] += 1.5
            heads[head][task.name] = logits.softmax(1)
    return Predictions([f"case{i}" for i in range(cases)], labels, torch.ones(cases, dtype=torch.bool), heads)


def _seconds(function, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


def run(settings, *, cases: int = DERM7PT_TEST_CASES, resamples: int = 1000) -> dict:
    from mmfuse.evaluation.bootstrap import BootstrapOptions
    from mmfuse.evaluation.compare import RunPredictions, compare_runs
    from mmfuse.evaluation.report import split_metrics
    from mmfuse.tasks import DERM7PT_TASKS

    repeats = 1 if settings.quick else 3
    weights = {"primary": 0.4, "auxiliary": 0.2, "fusion": 0.4}
    a = _predictions(cases, 0)
    b = _predictions(cases, 1, labels=a.labels)  # another model on the same cases
    options = BootstrapOptions(resamples=resamples, seed=0)

    def run_of(predictions, name):
        final = {t: p.numpy() for t, p in predictions.probabilities["fusion"].items()}
        return RunPredictions(name, DERM7PT_TASKS, predictions.case_ids, predictions.labels.numpy(), [final])

    plain = _seconds(lambda: split_metrics(a, DERM7PT_TASKS, weights), repeats)
    with_ci = _seconds(lambda: split_metrics(a, DERM7PT_TASKS, weights, bootstrap=options), repeats)
    compare = _seconds(lambda: compare_runs(run_of(a, "a"), run_of(b, "b"), bootstrap=options), repeats)
    return {
        "cases": cases,
        "resamples": resamples,
        "heads": 4,
        "seconds_metrics": round(plain, 3),
        "seconds_metrics_with_intervals": round(with_ci, 3),
        "seconds_intervals_only": round(with_ci - plain, 3),
        "seconds_compare": round(compare, 3),
        "threads": torch.get_num_threads(),
    }
