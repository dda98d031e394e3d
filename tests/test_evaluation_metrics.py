"""The paper's metrics equal scikit-learn's on random data, and the averages cover the right classes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import accuracy_score, confusion_matrix, precision_score, recall_score, roc_auc_score

from mmfuse.evaluation.derm7pt import MELANOMA_CLASSES, report_groups
from mmfuse.evaluation.metrics import head_metrics, objective, scored_classes, task_metrics
from mmfuse.tasks import DERM7PT_TASKS, TaskSpec


@st.composite
def predictions(draw):
    """Random probabilities and labels; small N so degenerate classes (no positives) occur too."""
    classes = draw(st.integers(2, 5))
    n = draw(st.integers(2, 40))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, classes))
    if draw(st.booleans()):
        logits = np.round(logits)  # ties in scores and in the arg-max
    probs = torch.tensor(logits, dtype=torch.float32).softmax(dim=1)
    labels = torch.tensor(rng.integers(0, classes, size=n))
    return probs, labels, TaskSpec("T", tuple(f"C{i}" for i in range(classes)))


@settings(max_examples=60, deadline=None)
@given(predictions())
def test_task_metrics_equal_scikit_learn(data):
    probs, labels, task = data
    result = task_metrics(probs, labels, task)
    y, p = labels.numpy(), probs.numpy()
    pred = probs.argmax(dim=1).numpy()
    classes = list(range(task.num_classes))
    assert result["acc"] == pytest.approx(accuracy_score(y, pred), abs=1e-6)
    precision = precision_score(y, pred, labels=classes, average=None, zero_division=0)
    recall = recall_score(y, pred, labels=classes, average=None, zero_division=0)
    matrix = confusion_matrix(y, pred, labels=classes)
    for c, name in enumerate(task.classes):
        got = result["classes"][name]
        positives = int((y == c).sum())
        if 0 < positives < len(y):
            assert got["auc"] == pytest.approx(roc_auc_score(y == c, p[:, c]), abs=1e-5)
        else:
            assert math.isnan(got["auc"])
        assert got["precision"] == pytest.approx(precision[c], abs=1e-6)
        assert got["sensitivity"] == pytest.approx(recall[c], abs=1e-6)
        tn = matrix.sum() - matrix[c, :].sum() - matrix[:, c].sum() + matrix[c, c]
        fp = matrix[:, c].sum() - matrix[c, c]
        expected_specificity = tn / (tn + fp) if tn + fp else 0.0
        assert got["specificity"] == pytest.approx(expected_specificity, abs=1e-6)


def _random_report_inputs(n: int = 120, seed: int = 0):
    rng = np.random.default_rng(seed)
    probs = {
        t.name: torch.tensor(rng.normal(size=(n, t.num_classes)), dtype=torch.float32).softmax(1)
        for t in DERM7PT_TASKS
    }
    labels = torch.stack([torch.tensor(rng.integers(0, t.num_classes, size=n)) for t in DERM7PT_TASKS], dim=1)
    return probs, labels


def test_avg_auc_averages_the_17_non_absent_classes_and_avg_acc_the_8_tasks():
    probs, labels = _random_report_inputs()
    report = head_metrics(probs, labels, DERM7PT_TASKS, groups=report_groups(DERM7PT_TASKS))
    scored = scored_classes(DERM7PT_TASKS)
    assert len(scored) == 17 and all(c != "ABS" for _, c in scored)
    y = labels.numpy()
    aucs = [
        roc_auc_score(y[:, i] == t.classes.index(c), probs[name].numpy()[:, t.classes.index(c)])
        for name, c in scored
        for i, t in enumerate(DERM7PT_TASKS)
        if t.name == name
    ]
    accs = [accuracy_score(y[:, i], probs[t.name].argmax(1).numpy()) for i, t in enumerate(DERM7PT_TASKS)]
    assert report["avg_auc"] == pytest.approx(np.mean(aucs), abs=1e-5)
    assert report["avg_acc"] == pytest.approx(np.mean(accs), abs=1e-6)
    assert objective(probs, labels, DERM7PT_TASKS, "avg_auc") == pytest.approx(report["avg_auc"], abs=1e-12)
    assert objective(probs, labels, DERM7PT_TASKS, "avg_acc") == pytest.approx(report["avg_acc"], abs=1e-12)


def test_melanoma_set_is_table_4_and_averages_each_metric():
    assert MELANOMA_CLASSES == (
        ("DIAG", "MEL"), ("PN", "ATP"), ("STR", "IR"), ("PIG", "IR"),
        ("RS", "PRS"), ("DaG", "IR"), ("BWV", "PRS"), ("VS", "IR"),
    )  # fmt: skip
    probs, labels = _random_report_inputs(seed=1)
    report = head_metrics(probs, labels, DERM7PT_TASKS, groups=report_groups(DERM7PT_TASKS))
    for metric in ("auc", "precision", "sensitivity", "specificity"):
        values = [report["tasks"][t]["classes"][c][metric] for t, c in MELANOMA_CLASSES]
        assert report["mel"][metric] == pytest.approx(np.mean(values), abs=1e-12)
    assert report_groups((TaskSpec("A", ("x", "y")),)) == {}


def test_every_value_is_a_fraction():
    probs, labels = _random_report_inputs(n=30, seed=2)
    report = head_metrics(probs, labels, DERM7PT_TASKS, groups=report_groups(DERM7PT_TASKS))
    values = [report["avg_auc"], report["avg_acc"], *report["mel"].values()]
    for entry in report["tasks"].values():
        values.append(entry["acc"])
        values += [v for cls in entry["classes"].values() for v in cls.values()]
    assert all(math.isnan(v) or 0.0 <= v <= 1.0 for v in values)


def test_mismatched_shapes_name_the_task():
    with pytest.raises(ValueError, match="task 'T'"):
        task_metrics(torch.rand(4, 3), torch.zeros(5, dtype=torch.long), TaskSpec("T", ("a", "b", "c")))
