"""A quick learnability probe: logistic regression on downsampled pixels, per modality and on both.

It answers "is there signal, and does the second modality add any?" in seconds, without a GPU;
a trained fusion model should beat it. Needs scikit-learn (a dev dependency).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

from mmfuse.data.images import load_resized
from mmfuse.data.records import CaseRecord
from mmfuse.tasks import TaskSpec


def pixel_features(records: Sequence[CaseRecord], pixels: int) -> dict[str, np.ndarray]:
    """``{"primary", "auxiliary"}`` -> float [N, pixels*pixels*3]; a missing auxiliary is zeros."""
    feats = {m: np.zeros((len(records), pixels * pixels * 3), np.float32) for m in ("primary", "auxiliary")}
    for i, r in enumerate(records):
        feats["primary"][i] = load_resized(r.primary_path, pixels).reshape(-1) / 255
        if r.auxiliary_path is not None:
            feats["auxiliary"][i] = load_resized(r.auxiliary_path, pixels).reshape(-1) / 255
    return feats


def learnability_probe(
    train: Sequence[CaseRecord], test: Sequence[CaseRecord], tasks: Sequence[TaskSpec], *, pixels: int = 24
) -> dict[str, dict[str, float]]:
    """Test balanced accuracy per task: each modality alone, ``concat`` (one model on both) and ``late``
    (the two single-modality models' probabilities added)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    train_x, test_x = pixel_features(train, pixels), pixel_features(test, pixels)
    for feats in (train_x, test_x):
        feats["concat"] = np.concatenate([feats["primary"], feats["auxiliary"]], axis=1)
    results: dict[str, dict[str, float]] = {name: {} for name in ("primary", "auxiliary", "concat", "late")}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # a strongly regularised probe, not a model
        for task in tasks:
            y_train = [task.index(r.labels[task.name]) for r in train]
            y_test = [task.index(r.labels[task.name]) for r in test]
            probabilities = {}
            for inputs in ("primary", "auxiliary", "concat"):
                model = make_pipeline(
                    StandardScaler(), LogisticRegression(C=0.01, max_iter=300, class_weight="balanced")
                )
                model.fit(train_x[inputs], y_train)
                probabilities[inputs] = model.predict_proba(test_x[inputs])
                predicted = model.classes_[probabilities[inputs].argmax(1)]
                results[inputs][task.name] = float(balanced_accuracy_score(y_test, predicted))
            late = model.classes_[(probabilities["primary"] + probabilities["auxiliary"]).argmax(1)]
            results["late"][task.name] = float(balanced_accuracy_score(y_test, late))
    return results
