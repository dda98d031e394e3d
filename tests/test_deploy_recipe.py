"""The deployment recipe of docs/deploy.md, run as written, gives `mmfuse predict`'s probabilities (1e-4).

The recipe's ``prepare`` is taken from the Markdown itself, so the documentation cannot drift from what
mmfuse does. A model with sharpened heads makes small preprocessing differences visible: the old recipe
(Pillow's default resize straight to the input size) must fail the same comparison.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import mmfuse
from mmfuse.cli import main

REPO = Path(__file__).resolve().parents[1]
TOLERANCE = 1e-4


def _recipe_source() -> str:
    text = (REPO / "docs" / "deploy.md").read_text()
    blocks = re.findall(r"^```python\n(.*?)^```", text, re.S | re.M)
    recipe = [b for b in blocks if "def prepare(" in b]
    assert len(recipe) == 1, "docs/deploy.md must show exactly one `prepare` recipe"
    # The recipe up to its last use of the session: imports, session, config, prepare.
    return recipe[0].split("\noutputs = ")[0]


def _images(folder: Path) -> list[tuple[Path, Path]]:
    rng = np.random.default_rng(0)
    pairs = []
    for i, (size, suffix) in enumerate([((400, 300), ".jpg"), ((97, 131), ".jpg"), ((50, 50), ".png")]):
        paths = []
        for modality in ("primary", "auxiliary"):
            # smooth blobs plus noise: real structure at every scale, so resizing choices matter
            base = rng.integers(0, 255, (6, 8, 3), dtype=np.uint8)
            image = Image.fromarray(base).resize(size, Image.Resampling.BICUBIC)
            noise = rng.integers(-40, 40, (size[1], size[0], 3))
            pixels = np.clip(np.asarray(image, np.int64) + noise, 0, 255).astype(np.uint8)
            path = folder / f"case{i}_{modality}{suffix}"
            Image.fromarray(pixels).save(path, quality=90) if suffix == ".jpg" else Image.fromarray(
                pixels
            ).save(path)
            paths.append(path)
        pairs.append(tuple(paths))
    return pairs


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("recipe")
    torch.manual_seed(0)
    model = mmfuse.build_model(
        "ammfm-swin", primary="test_convnext", auxiliary="test_efficientnet", img_size=48
    )
    with torch.no_grad():
        for parameter in model.heads.parameters():
            parameter.mul_(40)  # confident heads: a preprocessing difference moves probabilities visibly
    model.set_head_weights({"primary": 0.3, "auxiliary": 0.2, "fusion": 0.5})
    model.save_pretrained(tmp / "model")
    from mmfuse.export import export_onnx

    export_onnx(model, tmp / "tiny.onnx")
    return tmp, _images(tmp)


def _recipe_namespace(onnx_path: Path) -> dict:
    source = _recipe_source().replace('"tiny.onnx"', repr(str(onnx_path)))
    namespace: dict = {}
    exec(compile(source, "docs/deploy.md (recipe)", "exec"), namespace)  # noqa: S102 - the documented recipe
    return namespace


def _predict_cli(model_dir: Path, primary: Path, auxiliary: Path, capsys) -> dict[str, np.ndarray]:
    capsys.readouterr()
    args = ["predict", str(model_dir), "--primary", str(primary), "--auxiliary", str(auxiliary), "--json"]
    assert main(args) == 0
    result = json.loads(capsys.readouterr().out)
    return {t: np.array(list(e["probabilities"].values())) for t, e in result["tasks"].items()}


@pytest.mark.slow
def test_onnx_with_the_documented_recipe_equals_mmfuse_predict_on_image_files(exported, capsys):
    tmp, pairs = exported
    recipe = _recipe_namespace(tmp / "tiny.onnx")
    assert recipe["prep"] == mmfuse.resolve_data_config(mmfuse.from_pretrained(tmp / "model"))
    worst = 0.0
    for primary, auxiliary in pairs:
        outputs = recipe["session"].run(
            None, {"primary": recipe["prepare"](str(primary)), "auxiliary": recipe["prepare"](str(auxiliary))}
        )
        expected = _predict_cli(tmp / "model", primary, auxiliary, capsys)
        for task, probabilities in zip(recipe["config"]["tasks"], outputs, strict=True):
            worst = max(worst, float(np.abs(probabilities[0] - expected[task["name"]]).max()))
    assert worst <= TOLERANCE


@pytest.mark.slow
def test_the_old_recipe_would_fail_this_comparison(exported, capsys):
    """Guard against a vacuous check: Pillow's default resize straight to the input size differs."""
    tmp, pairs = exported
    recipe = _recipe_namespace(tmp / "tiny.onnx")
    size = recipe["prep"]["input_size"][-1]
    mean, std = np.float32(recipe["prep"]["mean"]), np.float32(recipe["prep"]["std"])

    def old_prepare(path: Path) -> np.ndarray:
        image = np.asarray(Image.open(path).convert("RGB").resize((size, size)), dtype=np.float32) / 255
        return ((image - mean) / std).transpose(2, 0, 1)[None].astype(np.float32)

    worst = 0.0
    for primary, auxiliary in pairs:
        outputs = recipe["session"].run(
            None, {"primary": old_prepare(primary), "auxiliary": old_prepare(auxiliary)}
        )
        expected = _predict_cli(tmp / "model", primary, auxiliary, capsys)
        for task, probabilities in zip(recipe["config"]["tasks"], outputs, strict=True):
            worst = max(worst, float(np.abs(probabilities[0] - expected[task["name"]]).max()))
    assert worst > 10 * TOLERANCE


@pytest.mark.slow
def test_predict_takes_paths_pil_images_arrays_and_batches(exported):
    tmp, pairs = exported
    model = mmfuse.from_pretrained(tmp / "model")
    (p0, a0), (p1, a1), _ = pairs
    by_path = model.predict(primary=[p0, p1], auxiliary=[a0, a1])
    by_image = model.predict(
        primary=[Image.open(p0), Image.open(p1)], auxiliary=[Image.open(a0), Image.open(a1)]
    )
    transform = mmfuse.create_transform(**model.data_config)
    by_tensor = model.predict(primary=transform.batch([p0, p1]), auxiliary=transform.batch([a0, a1]))
    one = model.predict(primary=str(p0), auxiliary=str(a0))
    png_array = np.asarray(Image.open(pairs[2][0]).convert("RGB"))
    from_array = model.predict(primary=png_array, auxiliary=None)
    from_png = model.predict(primary=pairs[2][0], auxiliary=None)
    for task in by_path:
        assert by_path[task].shape[0] == 2
        torch.testing.assert_close(by_path[task], by_image[task])
        torch.testing.assert_close(by_path[task], by_tensor[task])
        torch.testing.assert_close(by_path[task][:1], one[task])
        torch.testing.assert_close(from_array[task], from_png[task])
    mixed = model.predict(primary=[p0, p1], auxiliary=[a0, None])
    primary_only = model.predict(primary=[p1], auxiliary=None)
    for task in mixed:
        torch.testing.assert_close(mixed[task][1:], primary_only[task])
        torch.testing.assert_close(mixed[task][:1], by_path[task][:1])


def test_bad_images_are_named():
    model = mmfuse.build_model(
        "ammfm-swin", primary="test_convnext", auxiliary="test_efficientnet", img_size=32
    )
    with pytest.raises(ValueError, match=r"uint8 \[H, W, 3\]"):
        model.predict(primary=np.zeros((8, 8), np.float32))
    from mmfuse.data import DataError

    with pytest.raises(DataError, match="no-such.jpg"):
        model.predict(primary="no-such.jpg")
