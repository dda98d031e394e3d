"""Where the model looked: map sizes, normalisation, and maps that follow the lesion."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

import mmfuse
from mmfuse.cli import main
from mmfuse.explain import explain

pytest.importorskip("pytorch_grad_cam")

IMG = 128


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return mmfuse.build_model(
        "ammfm-swin", primary="test_convnext", auxiliary="test_efficientnet", img_size=IMG
    ).eval()


def lesion_image(path, centre: tuple[int, int], size: tuple[int, int] = (IMG, IMG)) -> str:
    """Uniform skin with one dark disc: only the disc can make a map peak somewhere."""
    width, height = size
    yy, xx = np.mgrid[:height, :width]
    disc = (xx - centre[0]) ** 2 + (yy - centre[1]) ** 2 < 14**2
    pixels = np.empty((height, width, 3), np.uint8)
    pixels[:] = (214, 170, 140)
    pixels[disc] = (70, 40, 30)
    Image.fromarray(pixels).save(path)
    return str(path)


def distinctive_spot(heat: np.ndarray, band: int = 32) -> np.ndarray:
    """Where the map differs most from its background level, away from the zero-padded border band.

    On uniform skin every interior position of a convolutional encoder sees the same thing except
    where the lesion is, so that is where the map stands out; the outer band (one last-stage cell)
    also stands out because of padding, whatever the image.
    """
    contrast = np.abs(heat - np.median(heat))
    contrast[:band], contrast[-band:], contrast[:, :band], contrast[:, -band:] = 0, 0, 0, 0
    return np.array(np.unravel_index(int(contrast.argmax()), heat.shape))


def test_maps_have_the_image_size_and_documented_normalisation(model, tmp_path):
    primary = lesion_image(tmp_path / "p.png", (50, 40), size=(150, 110))
    auxiliary = lesion_image(tmp_path / "a.png", (60, 60))
    result = explain(model, primary, auxiliary)
    assert set(result.gradcam) == {t.name for t in model.tasks}
    for cam in result.gradcam.values():
        assert cam.shape == (110, 150)
        assert cam.min() >= 0 and cam.max() <= 1
        assert cam.max() == pytest.approx(1.0) or cam.max() == 0
    assert set(result.attention) == set(model.fusion_pairs)
    for attn in result.attention.values():
        assert attn.shape == (110, 150)
        assert attn.min() >= 0
        assert attn.sum() == pytest.approx(1.0, rel=1e-4)


def test_prediction_is_predicts_and_no_attention_without_auxiliary(model, tmp_path):
    from mmfuse.evaluation.pair import predict_pair

    primary = lesion_image(tmp_path / "p.png", (64, 64))
    result = explain(model, primary)
    assert result.attention == {}
    assert result.prediction == predict_pair(model, primary)


def test_maps_move_with_the_lesion(tmp_path):
    """Shift the lesion (by a multiple of the encoder's stride): every map's peak shifts with it."""
    size = 192
    torch.manual_seed(0)
    model = mmfuse.build_model(
        "ammfm-swin", primary="test_convnext", auxiliary="test_efficientnet", img_size=size
    ).eval()
    shift = 64
    first, second = (size // 3,) * 2, (size // 3 + shift,) * 2

    def pair(name, centre):
        return [lesion_image(tmp_path / f"{name}{m}.png", centre, (size, size)) for m in "pa"]

    a, b = explain(model, *pair("a", first)), explain(model, *pair("b", second))
    maps = {f"gradcam {t}": (a.gradcam[t], b.gradcam[t]) for t in a.gradcam}
    maps.update({f"attention {s}": (a.attention[s], b.attention[s]) for s in a.attention})
    assert any(name.startswith("attention") for name in maps)
    # An untrained model's Grad-CAM can be all zeros for a task (no position raises its score); the
    # documented meaning of such a map is "nowhere", and there is no peak to follow.
    flat = {name for name, (before, after) in maps.items() if not before.any() and not after.any()}
    assert len(flat) <= len(a.gradcam) // 2, flat
    for name, (before, after) in maps.items():
        if name in flat:
            continue
        start, end = distinctive_spot(before), distinctive_spot(after)
        assert np.abs(start - np.array(first)[::-1]).max() <= 32, (name, start)  # one last-stage cell
        assert np.abs(end - start - shift).max() <= 16, (name, start, end)


def test_explain_cli_writes_overlays_and_predictions(model, tmp_path, capsys):
    model.save_pretrained(tmp_path / "model")
    primary = lesion_image(tmp_path / "p.jpg", (64, 64))
    auxiliary = lesion_image(tmp_path / "a.jpg", (64, 64))
    out = tmp_path / "out"
    assert (
        main(
            [
                "explain",
                str(tmp_path / "model"),
                "--primary",
                primary,
                "--auxiliary",
                auxiliary,
                "--out",
                str(out),
            ]
        )
        == 0
    )
    summary = json.loads((out / "predictions.json").read_text())
    assert set(summary["maps"]["gradcam"]) == {t.name for t in model.tasks}
    for name in [*summary["maps"]["gradcam"].values(), *summary["maps"]["attention"].values()]:
        with Image.open(out / name) as img:
            assert img.size == (IMG, IMG) and img.mode == "RGB"
    assert summary["tasks"]["DIAG"]["predicted"] in capsys.readouterr().out


def test_explain_cli_names_a_missing_image(tmp_path, capsys):
    assert (
        main(
            ["explain", str(tmp_path), "--primary", str(tmp_path / "nope.jpg"), "--out", str(tmp_path / "o")]
        )
        == 1
    )
    assert "nope.jpg" in capsys.readouterr().err
