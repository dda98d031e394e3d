"""The paper's weight search (FusionM4Net's second stage): mean task accuracy of mixed per-view logits.

Both modes are checked against a brute force written independently with NumPy over the same grid.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import mmfuse
from mmfuse.evaluation.weight_search import fusionm4net_candidates, search_head_weights
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


def _reference_weight_list(search_num: int, schedule: str) -> list:
    # As FusionM4Net builds it: np.linspace for "Linear", its cosine learning-rate schedule (lr=1) otherwise.
    if schedule == "linear":
        return list(np.linspace(0.05, 1, num=search_num))
    return [float(1 / 2 * (np.cos(np.pi * (e % search_num) / search_num) + 1)) for e in range(search_num)]


def _replay_fusionm4net(logits, labels, weight_list):
    """A literal replay of the reference's loop: loop variables renormalised in place, first strict best."""
    best_acc, best_weight = 0, 0
    names = [t.name for t in TASKS]
    for weight in weight_list:
        for weight_1 in weight_list:
            for weight_2 in weight_list:
                weight_total = weight + weight_1 + weight_2
                if weight_total > 1:
                    continue
                weight = weight / weight_total  # noqa: PLW2901 - the reference's own statements
                weight_1 = weight_1 / weight_total  # noqa: PLW2901
                weight_2 = weight_2 / weight_total  # noqa: PLW2901
                accuracies = []
                for i, name in enumerate(names):
                    total = (
                        weight_1 * logits["auxiliary"][name]
                        + weight * logits["primary"][name]
                        + weight_2 * logits["fusion"][name]
                    )
                    predictions = [_softmax(total[:, n]).mean(0).argmax() for n in range(total.shape[1])]
                    accuracies.append(np.mean(np.array(predictions) == labels[:, i]))
                avg_acc = sum(reversed(accuracies)) / len(names)  # the reference adds the last task first
                if avg_acc > best_acc:
                    best_acc, best_weight = avg_acc, (weight, weight_1, weight_2)
    return best_weight, best_acc


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
@pytest.mark.parametrize("seed", range(6))
def test_fusionm4net_method_picks_what_the_reference_loop_picks(seed, schedule):
    logits, labels = _fixed_logits(seed)
    search_num = 20 if schedule == "linear" else 12
    expected, expected_acc = _replay_fusionm4net(logits, labels, _reference_weight_list(search_num, schedule))
    torch_logits = {h: {t: torch.tensor(z) for t, z in per.items()} for h, per in logits.items()}
    probabilities = {h: {t: z.softmax(-1).mean(0) for t, z in per.items()} for h, per in torch_logits.items()}
    result = search_head_weights(
        probabilities,
        torch.tensor(labels),
        TASKS,
        logits=torch_logits,
        method="fusionm4net",
        search_num=search_num,
        schedule=schedule,
    )
    assert tuple(result.weights[h] for h in HEADS) == expected
    assert result.score == expected_acc and (result.objective, result.combine) == ("avg_acc", "logits")


def test_fusionm4net_candidates_are_the_reference_path():
    linear = fusionm4net_candidates(20, "linear")
    assert len({tuple(round(w, 12) for w in p) for p in linear}) == 38
    assert max(p[2] for p in linear) == pytest.approx(1 / 3)
    cosine = fusionm4net_candidates(20, "cosine")
    assert len({tuple(round(w, 6) for w in p) for p in cosine}) == 597
    assert all(sum(p) == pytest.approx(1) for p in linear + cosine)
    with pytest.raises(ValueError, match="schedule must be one of"):
        fusionm4net_candidates(20, "exponential")


def test_fusionm4net_method_needs_logits_and_scores_accuracy():
    logits, labels = _fixed_logits()
    torch_logits = {h: {t: torch.tensor(z) for t, z in per.items()} for h, per in logits.items()}
    with pytest.raises(ValueError, match="pass logits="):
        search_head_weights({}, torch.tensor(labels), TASKS, method="fusionm4net")
    with pytest.raises(ValueError, match="scores avg_acc"):
        search_head_weights(
            {}, torch.tensor(labels), TASKS, logits=torch_logits, method="fusionm4net", objective="avg_auc"
        )


def test_evaluation_stores_the_fusionm4net_choice_in_the_model(tiny_model_kwargs):
    from mmfuse.evaluation.evaluate import tune_head_weights
    from mmfuse.evaluation.inference import Predictions

    model = mmfuse.build_model("ammfm-swin", **tiny_model_kwargs)
    generator = torch.Generator().manual_seed(0)
    n = 30
    logits = {
        h: {t.name: torch.randn(2, n, t.num_classes, generator=generator) for t in model.tasks} for h in HEADS
    }
    labels = torch.stack([torch.randint(0, t.num_classes, (n,), generator=generator) for t in model.tasks], 1)
    probabilities = {h: {t: z.softmax(-1).mean(0) for t, z in per.items()} for h, per in logits.items()}
    predictions = Predictions(
        [str(i) for i in range(n)], labels, torch.ones(n, dtype=torch.bool), probabilities, logits
    )
    result = tune_head_weights(
        model,
        predictions,
        step=0.05,
        objective="avg_auc",
        method="fusionm4net",
        search_num=20,
        schedule="linear",
    )
    direct = search_head_weights(probabilities, labels, model.tasks, logits=logits, method="fusionm4net")
    assert result.weights == direct.weights and result.objective == "avg_acc"
    assert model.head_combine == "logits"
    assert model.head_weights_dict == pytest.approx(result.weights)


def test_config_refuses_the_fusionm4net_search_on_temperature_scaled_logits():
    from mmfuse.training.config import RunConfigError, resolve

    search = {"method": "fusionm4net", "search_num": 20, "schedule": "cosine"}
    config = resolve(
        {"data": {"root": "x"}, "evaluation": {"weight_search": search, "temperature_scaling": False}}
    )
    assert config["evaluation"]["weight_search"]["schedule"] == "cosine"
    with pytest.raises(RunConfigError, match="temperature_scaling: false"):
        resolve({"data": {"root": "x"}, "evaluation": {"weight_search": search}})
    with pytest.raises(RunConfigError, match="search_num must be a positive integer"):
        resolve({"data": {"root": "x"}, "evaluation": {"weight_search": {"search_num": 0}}})
