"""The paper's weight search (FusionM4Net's second stage): mean task accuracy of mixed per-view logits.

Both modes are checked against a brute force written independently with NumPy over the same grid.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import mmfuse
from mmfuse.evaluation.weight_search import search_head_weights
from mmfuse.model import HEADS
from mmfuse.tasks import TaskSpec

TASKS = (TaskSpec("A", ("ABS", "X", "Y")), TaskSpec("B", ("ABS", "PRS")), TaskSpec("C", ("P", "Q", "R", "S")))
VIEWS, CASES = 4, 60


def _fixed_logits(seed: int = 3):
    rng = np.random.default_rng(seed)
    labels = np.stack([rng.integers(0, t.num_classes, size=CASES) for t in TASKS], axis=1)
    logits = {}
    for h, noise in zip(HEADS, (1.5, 3.0, 2.0), strict=True):
        logits[h] = {}
        for i, t in enumerate(TASKS):
            signal = np.eye(t.num_classes)[labels[:, i]]
            logits[h][t.name] = signal[None] + noise * rng.normal(size=(VIEWS, CASES, t.num_classes))
    return logits, labels


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _grid(step: float):
    n = round(1 / step)
    return [(i / n, j / n, (n - i - j) / n) for i in range(n + 1) for j in range(n + 1 - i)]


def _brute_force_avg_acc(logits, labels, combine: str, step: float) -> dict[tuple, float]:
    scores = {}
    for point in _grid(step):
        accuracies = []
        for i, t in enumerate(TASKS):
            if combine == "logits":  # weighted logits per view, softmax per view, mean over views
                z = sum(w * logits[h][t.name] for w, h in zip(point, HEADS, strict=True))
                p = _softmax(z).mean(axis=0)
            else:  # Eq. 4: weighted mean of the view-averaged probabilities
                p = sum(
                    w * _softmax(logits[h][t.name]).mean(axis=0) for w, h in zip(point, HEADS, strict=True)
                )
            accuracies.append(np.mean(p.argmax(axis=1) == labels[:, i]))
        scores[point] = float(np.mean(accuracies))
    return scores


@pytest.mark.parametrize("combine", ["logits", "probabilities"])
def test_avg_acc_search_finds_the_brute_force_optimum(combine):
    logits, labels = _fixed_logits()
    torch_logits = {
        h: {t: torch.tensor(z, dtype=torch.float64) for t, z in per.items()} for h, per in logits.items()
    }
    probabilities = {h: {t: z.softmax(-1).mean(0) for t, z in per.items()} for h, per in torch_logits.items()}
    result = search_head_weights(
        probabilities,
        torch.tensor(labels),
        TASKS,
        step=0.1,
        objective="avg_acc",
        combine=combine,
        logits=torch_logits if combine == "logits" else None,
    )
    brute = _brute_force_avg_acc(logits, labels, combine, 0.1)
    assert result.combine == combine
    assert result.score == pytest.approx(max(brute.values()))
    chosen = tuple(result.weights[h] for h in HEADS)
    assert brute[
        min(brute, key=lambda p: max(abs(a - b) for a, b in zip(p, chosen, strict=True)))
    ] == pytest.approx(result.score)
    for point, value in result.surface:
        assert value == pytest.approx(
            brute[min(brute, key=lambda p: sum(abs(a - b) for a, b in zip(p, point, strict=True)))]
        )


def test_the_two_modes_differ_on_these_predictions():
    # Otherwise the test above could not tell them apart.
    logits, labels = _fixed_logits()
    a = _brute_force_avg_acc(logits, labels, "logits", 0.1)
    b = _brute_force_avg_acc(logits, labels, "probabilities", 0.1)
    assert any(abs(a[p] - b[p]) > 1e-9 for p in a)


def test_predict_combines_heads_as_the_stored_search_did(tiny_model_kwargs, tmp_path):
    torch.manual_seed(0)
    model = mmfuse.build_model("ammfm-swin", **tiny_model_kwargs).eval()
    model.set_head_weights({"primary": 0.5, "auxiliary": 0.2, "fusion": 0.3})
    model.set_head_combine("logits")
    images = torch.randn(3, 3, 64, 64), torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        out = model(*images).logits
    expected = {
        t: sum(w * out[h][t] for h, w in zip(HEADS, (0.5, 0.2, 0.3), strict=True)).softmax(-1)
        for t in out["primary"]
    }
    got = model.predict(*images)
    for task in got:
        torch.testing.assert_close(got[task], expected[task])
    loaded = mmfuse.from_pretrained(model.save_pretrained(tmp_path))
    assert loaded.config["head_combine"] == "logits"
    for task, p in loaded.predict(*images).items():
        torch.testing.assert_close(p, expected[task])
    with pytest.raises(ValueError, match="head_combine must be one of"):
        model.set_head_combine("votes")


def test_logits_mode_needs_logits():
    logits, labels = _fixed_logits()
    probabilities = {
        h: {t: torch.tensor(_softmax(z).mean(0)) for t, z in per.items()} for h, per in logits.items()
    }
    with pytest.raises(ValueError, match="needs the per-view logits"):
        search_head_weights(probabilities, torch.tensor(labels), TASKS, combine="logits")
