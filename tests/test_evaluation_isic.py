"""The ISIC challenge metrics: the official scorer's definitions, checked against the scorer itself."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from isic_scorer import as_scorer_submission, needs_scorer, official_scores, write_truth

from mmfuse.evaluation.isic import CLASS_METRICS, isic_metrics
from mmfuse.evaluation.submission import write_submission
from mmfuse.tasks import TaskSpec

CLASSES = ("AKIEC", "BCC", "BEN_OTH", "BKL", "MEL")


def test_threshold_metrics_use_strictly_above_one_half_and_score_empty_denominators_as_one():
    probabilities = np.array([[0.5, 0.5], [0.9, 0.1], [0.2, 0.8]])
    report = isic_metrics(probabilities, np.array([0, 0, 1]), ("A", "B"))
    a = report["isic_classes"]["A"]
    assert a["sensitivity"] == 0.5  # 0.5 is not above the threshold
    assert a["specificity"] == 1.0 and a["ppv"] == 1.0
    assert report["balanced_accuracy"] == pytest.approx((0.5 + 1.0) / 2)  # the tie predicts nothing


def test_a_class_without_positives_has_no_ranking_metrics_and_is_left_out_of_the_macro_mean():
    probabilities = np.array([[0.7, 0.2, 0.1], [0.3, 0.6, 0.1], [0.6, 0.3, 0.1]])
    report = isic_metrics(probabilities, np.array([0, 1, 0]), ("A", "B", "C"))
    assert math.isnan(report["isic_classes"]["C"]["auc"])
    assert report["macro_auc"] == pytest.approx(1.0)
    assert report["isic_classes"]["C"]["sensitivity"] == 1.0  # no positives: the scorer's freebie


@needs_scorer
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_equal_the_official_scorer_to_1e6(tmp_path, seed):
    rng = np.random.default_rng(seed)
    n = 150
    labels = rng.choice(len(CLASSES), size=n, p=[0.1, 0.5, 0.05, 0.15, 0.2])
    logits = rng.normal(size=(n, len(CLASSES))) + 2.0 * np.eye(len(CLASSES))[labels] * rng.random((n, 1))
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    probabilities[:5] = np.round(probabilities[:5], 1)  # ties, and values exactly at the threshold
    probabilities[5] = 1 / len(CLASSES)
    ids = [f"IL_{i:07d}" for i in range(n)]
    task = TaskSpec("DX", CLASSES)
    submission = write_submission(tmp_path / "sub.csv", ids, torch.tensor(probabilities), task)
    official = official_scores(
        write_truth(tmp_path / "truth.csv", ids, labels, CLASSES),
        as_scorer_submission(submission, tmp_path / "scorer.csv"),
    )
    ours = isic_metrics(probabilities, labels, CLASSES)
    assert_same_as_official(ours, official)


def assert_same_as_official(ours: dict, official: dict) -> float:
    """Every per-class, macro and aggregate metric within 1e-6; returns the largest difference."""
    largest = abs(ours["balanced_accuracy"] - official["aggregate"]["balanced_accuracy"])
    for metric in CLASS_METRICS:
        for cls, value in official["per_category"][metric].items():
            largest = max(largest, abs(ours["isic_classes"][cls][metric] - value))
        largest = max(largest, abs(ours[f"macro_{metric}"] - official["macro_average"][metric]))
    assert largest < 1e-6
    return largest
