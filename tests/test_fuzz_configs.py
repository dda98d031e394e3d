"""Fuzzing run configs: random edits of a valid YAML config, then `mmfuse train` up to its first step.

The first training step is where every value has been used (data, model, optimiser, schedules); the
test stops the run there by raising KeyboardInterrupt from the loss (exit status 130), so a config with
a billion epochs is checked in a second. Everything else must be a one-line error naming the file.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
import yaml
from hostile import FUZZ, apply_edits, assert_contract, document_edits, invoke
from hypothesis import given, settings
from hypothesis import strategies as st
from test_training_fixtures import make_release, tiny_config

from mmfuse.cli import EXIT_INTERRUPTED
from mmfuse.training import trainer as trainer_module


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    return make_release(tmp_path_factory.mktemp("fuzz-config") / "derm7pt", cases=12, size=32)


@pytest.fixture
def stop_at_first_step(monkeypatch):
    real = trainer_module.multitask_loss

    def first_step_then_stop(*args, **kwargs):
        real(*args, **kwargs)
        raise KeyboardInterrupt("the first step ran")

    monkeypatch.setattr(trainer_module, "multitask_loss", first_step_then_stop)


hostile_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.sampled_from([0, -1, -32, 1, 10**6, 10**12, 2**63]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=10),
    st.sampled_from(["auto", "cpu", "tpu", "cosine", "bf16", "none", "test_convnext", "os.system"]),
    st.lists(st.integers(-3, 3), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(-3, 3), max_size=2),
)


@settings(FUZZ, max_examples=min(FUZZ.max_examples, 12))  # each example builds a model and a batch
@given(edits=document_edits(hostile_values, ["set", "set", "delete", "add"], max_size=2))
def test_fuzz_run_config_yaml_up_to_the_first_step(release, stop_at_first_step, edits):
    config = tiny_config(release, train={"amp": "none", "channels_last": False})
    config = apply_edits(config, edits)
    with tempfile.TemporaryDirectory() as tmp:
        config_file = Path(tmp) / "run.yaml"
        config_file.write_text(yaml.safe_dump(config))
        outcome = invoke("train", config_file, "--out", Path(tmp) / "run", "--no-eval", limit=120)
        assert_contract(outcome, allowed=(1, EXIT_INTERRUPTED))
        if outcome.code == 1:
            first = outcome.err.strip().splitlines()[-1]
            assert str(config_file) in first or "--out" in first or str(release) in first, outcome


@FUZZ
@given(text=st.text(max_size=300))
def test_fuzz_run_config_not_yaml(release, tmp_path_factory, text):
    tmp = Path(tempfile.mkdtemp())
    try:
        config_file = tmp / "run.yaml"
        config_file.write_text(text, encoding="utf-8", errors="surrogatepass")
        outcome = invoke("train", config_file, "--out", tmp / "run", "--no-eval", "--epochs", "1")
        assert_contract(outcome, allowed=(1,))
        assert str(config_file) in outcome.err, outcome
    finally:
        shutil.rmtree(tmp)
