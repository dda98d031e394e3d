"""The run config is checked like the model config: a table of value rules (mmfuse.rules), one per key."""

from __future__ import annotations

import pytest

from mmfuse.errors import RunConfigError
from mmfuse.rules import integer_in, number_at_least, one_of
from mmfuse.training.config import DEFAULTS, VALUE_RULES, resolve

# Checked together with other keys or by a registry (training.config._check_together), or free-form.
_NOT_IN_THE_TABLE = {("train", "swa", "epochs"), ("train", "track"), ("evaluation", "splits")}


def _leaves(section: dict, path: tuple[str, ...]):
    for key, value in section.items():
        if isinstance(value, dict) and value:
            yield from _leaves(value, (*path, key))
        else:
            yield (*path, key)


@pytest.mark.parametrize("section", ["train", "evaluation"])
def test_every_key_of_a_closed_section_has_a_rule(section):
    # A key added to DEFAULTS without its rule would take any value until it breaks a run hours in.
    missing = set(_leaves(DEFAULTS[section], (section,))) - set(VALUE_RULES) - _NOT_IN_THE_TABLE
    assert not missing, f"run config keys without a value rule: {sorted(missing)}"


def test_rules_name_the_key_the_range_and_the_value():
    assert integer_in(1)("train.epochs", 0) == "train.epochs must be a positive integer, got 0"
    assert (
        integer_in(0, 256)("data.num_workers", 300)
        == "data.num_workers must be an integer in [0, 256], got 300"
    )
    assert number_at_least(0.0)("train.lr", float("nan")) == "train.lr must be a finite number >= 0, got nan"
    assert number_at_least(0.0, optional=True)("train.grad_clip", None) is None
    assert one_of((None, "svm"))("evaluation.second_stage", "rf") == (
        "evaluation.second_stage must be one of [None, 'svm'], got 'rf'"
    )


@pytest.mark.parametrize(
    ("train", "message"),
    [
        ({"epochs": True}, "train.epochs must be a positive integer, got True"),  # YAML's true is not 1 epoch
        ({"lr": 0}, "train.lr must be positive, got 0"),
        ({"modality_dropout": 1.0}, r"train.modality_dropout must be in \[0, 1\), got 1.0"),
        (
            {"swa": {"epochs": 5}, "epochs": 4},
            r"train.swa.epochs must be an integer in \[0, train.epochs\], got 5",
        ),
    ],
)
def test_the_run_config_reports_the_value_at_fault(tmp_path, train, message):
    with pytest.raises(RunConfigError, match=message):
        resolve({"data": {"root": str(tmp_path)}, "train": train})
