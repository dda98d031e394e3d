"""Overriding train.epochs keeps the recipe's shape: SWA covers the same share of the shortened run."""

from pathlib import Path

import pytest

from mmfuse.training.config import RunConfigError, load_config, resolve

REPO = Path(__file__).resolve().parents[1]


def test_shortened_demo_recipe_scales_swa():
    config = load_config(REPO / "examples/configs/demo.yaml", data={"root": "x"}, train={"epochs": 2})
    assert config["train"]["epochs"] == 2 and config["train"]["swa"]["epochs"] == 0  # 10 of 40 -> 0 of 2
    config = load_config(REPO / "examples/configs/paper.yaml", train={"epochs": 10})
    assert config["train"]["swa"]["epochs"] == 2  # 50 of 250


def test_explicit_swa_override_is_kept():
    config = resolve({"data": {"root": "x"}}, train={"epochs": 20, "swa": {"epochs": 5}})
    assert config["train"]["swa"]["epochs"] == 5


def test_config_without_override_is_unchanged():
    assert resolve({"data": {"root": "x"}})["train"]["swa"]["epochs"] == 50


@pytest.mark.parametrize("anneal", [None, -1, 1.5, "2", True])
def test_swa_anneal_epochs_must_be_a_whole_number(anneal):
    with pytest.raises(RunConfigError, match=r"train\.swa\.anneal_epochs must be a non-negative integer"):
        resolve({"data": {"root": "x"}}, train={"swa": {"anneal_epochs": anneal}})


def test_a_yaml_11_boolean_word_is_named_not_silently_read(tmp_path):
    import pytest

    from mmfuse.errors import RunConfigError

    path = tmp_path / "run.yaml"
    path.write_text("data: {root: x}\nevaluation: {tta: no}\n")
    with pytest.raises(
        RunConfigError, match=r"evaluation\.tta must be true or false, got 'no' \(write true or false"
    ):
        load_config(path)
    path.write_text("data: {root: x, device_cache: True}\nevaluation: {tta: FALSE}\n")
    config = load_config(path)
    assert config["evaluation"]["tta"] is False and config["data"]["device_cache"] is True
