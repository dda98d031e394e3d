"""Calibration: ECE, temperature fitting, and temperatures stored, applied and switched off by the model."""

from __future__ import annotations

import math

import pytest
import torch

from mmfuse import build_model
from mmfuse.evaluation.calibration import (
    calibration_report,
    expected_calibration_error,
    fit_temperature,
    fit_temperatures,
    format_ece,
    reliability_bins,
)
from mmfuse.evaluation.inference import collect_predictions, with_temperatures
from mmfuse.hub import from_pretrained
from mmfuse.model import HEADS


def _calibrated_sample(n: int, classes: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and labels drawn from their own softmax: a perfectly calibrated model."""
    generator = torch.Generator().manual_seed(seed)
    logits = 1.5 * torch.randn(n, classes, generator=generator)
    labels = torch.multinomial(logits.softmax(dim=1), 1, generator=generator).squeeze(1)
    return logits, labels


def test_ece_is_zero_for_exact_confidences_and_the_gap_for_constant_overconfidence():
    probabilities = torch.tensor([[0.9, 0.1]] * 10)
    labels = torch.tensor([0] * 9 + [1])
    assert expected_calibration_error(probabilities, labels) == pytest.approx(0.0, abs=1e-6)
    labels = torch.tensor([0] * 6 + [1] * 4)  # 90 % confident, 60 % right
    assert expected_calibration_error(probabilities, labels) == pytest.approx(0.3, abs=1e-6)
    bins = reliability_bins(probabilities, labels)
    filled = [i for i, n in enumerate(bins["count"]) if n]
    assert len(filled) == 1 and bins["count"][filled[0]] == 10
    assert bins["accuracy"][filled[0]] == pytest.approx(0.6) and bins["confidence"][
        filled[0]
    ] == pytest.approx(0.9)


@pytest.mark.parametrize("scale", [0.5, 1.0, 4.0])
def test_fitted_temperature_undoes_a_known_scaling_of_the_logits(scale):
    logits, labels = _calibrated_sample(4000, 4, seed=1)
    temperature = fit_temperature(scale * logits, labels)
    assert temperature == pytest.approx(scale, rel=0.1)


def test_perfectly_separated_validation_cases_leave_the_head_unscaled():
    logits = torch.tensor([[2.0, 0.0], [0.0, 2.0]]).repeat(50, 1)
    labels = torch.tensor([0, 1]).repeat(50)  # every arg-max right: the NLL only falls as T -> 0
    assert fit_temperature(logits, labels) == 1.0


def test_temperature_is_fitted_on_the_view_averaged_probabilities():
    logits, labels = _calibrated_sample(3000, 3, seed=2)
    views = torch.stack([logits, logits])  # two identical TTA views average to one
    assert fit_temperature(5 * views, labels) == pytest.approx(fit_temperature(5 * logits, labels), rel=1e-5)


def test_fusion_and_auxiliary_heads_are_fitted_on_cases_with_an_auxiliary_image_only():
    from mmfuse.tasks import TaskSpec

    tasks = (TaskSpec("T", ("A", "B", "C")),)
    logits, labels = _calibrated_sample(2000, 3, seed=3)
    present = torch.arange(2000) < 1000
    garbage = torch.where(present.view(-1, 1), 3 * logits, -20 * logits)  # absent rows must be ignored
    per_head = {"primary": {"T": logits.unsqueeze(0)}, "fusion": {"T": garbage.unsqueeze(0)}}
    temperatures = fit_temperatures(per_head, labels.view(-1, 1), tasks, present)
    assert temperatures["primary"]["T"] == pytest.approx(1.0, rel=0.12)
    assert temperatures["fusion"]["T"] == pytest.approx(3.0, rel=0.12)


def _overconfident_model(tiny_model_kwargs, n: int = 256):
    """A tiny AMMFM whose heads are made 6x over-confident after labels are drawn from their honest softmax."""
    torch.manual_seed(0)
    model = build_model("ammfm-swin", **tiny_model_kwargs).eval()
    generator = torch.Generator().manual_seed(0)
    size = tiny_model_kwargs["img_size"]
    primary = torch.randn(n, 3, size, size, generator=generator)
    auxiliary = torch.randn(n, 3, size, size, generator=generator)
    with torch.no_grad():
        # Spread the honest logits (std ~1.5) so that the labels carry information.
        for head in model.heads.values():
            for classifier in head.classifiers.values():
                torch.nn.init.normal_(classifier.weight, std=1.0, generator=generator)
                classifier.bias.zero_()
        logits = model(primary=primary, auxiliary=auxiliary).logits
        for head in model.heads.values():
            for task, classifier in head.classifiers.items():
                z = logits["fusion"][task]
                factor = 1.5 / float(z.std().clamp(min=1e-6))
                classifier.weight.mul_(factor)
        honest = model(primary=primary, auxiliary=auxiliary).logits["fusion"]
        labels = torch.stack(
            [
                torch.multinomial(honest[t.name].softmax(1), 1, generator=generator).squeeze(1)
                for t in model.tasks
            ],
            dim=1,
        )
        for head in model.heads.values():
            for classifier in head.classifiers.values():
                classifier.weight.mul_(6.0)
    batch = {
        "primary": primary,
        "auxiliary": auxiliary,
        "auxiliary_present": torch.ones(n, dtype=torch.bool),
        "labels": labels,
        "case_id": [f"c{i}" for i in range(n)],
    }
    return model, batch


def test_an_overconfident_model_is_fixed_by_its_fitted_temperatures(tiny_model_kwargs, tmp_path):
    model, batch = _overconfident_model(tiny_model_kwargs)
    raw = collect_predictions(model, [batch])
    temperatures = fit_temperatures(raw.logits, raw.labels, model.tasks, raw.auxiliary_present)
    assert temperatures["fusion"]["DIAG"] == pytest.approx(6.0, rel=0.3)
    model.set_temperatures(temperatures)
    scaled = with_temperatures(raw, model.temperatures)
    report = calibration_report(
        raw.probabilities["fusion"], scaled.probabilities["fusion"], raw.labels, model.tasks
    )
    assert report["before"]["mean_ece"] > 0.2  # over-confident on purpose
    assert report["after"]["mean_ece"] < report["before"]["mean_ece"] / 2
    for task in model.tasks:  # arg-max, hence accuracy, is untouched
        assert torch.equal(
            raw.probabilities["fusion"][task.name].argmax(1),
            scaled.probabilities["fusion"][task.name].argmax(1),
        )
    assert "->" in format_ece(report, model.tasks)

    # stored in config.json, applied by predict, off with calibrated=False
    model.save_pretrained(tmp_path / "model")
    loaded = from_pretrained(tmp_path / "model")
    assert loaded.temperatures == model.temperatures and set(loaded.temperatures) == set(HEADS)
    x, y = batch["primary"][:4], batch["auxiliary"][:4]
    calibrated, plain = (
        loaded.predict(primary=x, auxiliary=y),
        loaded.predict(primary=x, auxiliary=y, calibrated=False),
    )
    logits = loaded(primary=x, auxiliary=y).logits
    expected = loaded.mix_head_probabilities(
        {h: {t: (z / temperatures[h][t]).softmax(1) for t, z in per.items()} for h, per in logits.items()}
    )
    for task in model.tasks:
        assert torch.allclose(calibrated[task.name], expected[task.name], atol=1e-5)
        assert not torch.allclose(plain[task.name], calibrated[task.name], atol=1e-3)
    again = collect_predictions(loaded, [batch])  # the evaluation applies them too
    assert torch.allclose(
        again.probabilities["fusion"]["DIAG"], scaled.probabilities["fusion"]["DIAG"], atol=1e-5
    )


def test_invalid_temperatures_are_refused_by_name(tiny_model_kwargs):
    model = build_model("ammfm-swin", **tiny_model_kwargs)
    with pytest.raises(ValueError, match="unknown head 'middle'"):
        model.set_temperatures({"middle": {"DIAG": 1.0}})
    with pytest.raises(ValueError, match="unknown task 'XYZ'"):
        model.set_temperatures({"fusion": {"XYZ": 1.0}})
    with pytest.raises(ValueError, match="fusion/DIAG must be a positive number"):
        model.set_temperatures({"fusion": {"DIAG": -1}})
    with pytest.raises(ValueError, match="positive"):
        model.set_temperatures({"fusion": {"DIAG": math.nan}})
    model.set_temperatures({"fusion": {"DIAG": 2.0}})
    assert model.config["temperatures"] == {"fusion": {"DIAG": 2.0}}
    model.set_temperatures(None)
    assert model.temperatures is None
