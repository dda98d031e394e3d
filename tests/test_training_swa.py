"""SWA: the saved model holds the average of the SWA epochs' weights, with batch-norm statistics recomputed."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file
from test_training_fixtures import make_release, tiny_config
from torch.optim.swa_utils import update_bn

import mmfuse
from mmfuse.hub import from_pretrained
from mmfuse.pipeline import train
from mmfuse.training.batches import LoaderBatches
from mmfuse.training.checkpoint import checkpoint_dir
from mmfuse.training.distributed import DistContext
from mmfuse.training.schedule import _PairInput


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    return make_release(tmp_path_factory.mktemp("release") / "derm7pt")


@pytest.mark.slow
def test_averaged_weights_are_swapped_in_with_batchnorm_recomputed(release, tmp_path):
    config = tiny_config(
        release, train={"epochs": 3, "swa": {"epochs": 2, "anneal_epochs": 1}, "keep_checkpoints": 3}
    )
    run = tmp_path / "run"
    result = train(config, run, evaluate=True)
    saved = from_pretrained(run / "model").state_dict()
    live = {
        e: load_file(str(checkpoint_dir(run / "checkpoints", e) / "model.safetensors")) for e in (1, 2, 3)
    }

    # Parameters: the mean of the live weights after epochs 2 and 3 (the SWA epochs), not the last ones.
    parameters = dict(result.model.named_parameters())
    assert parameters
    for name in parameters:
        expected = (live[2][name] + live[3][name]) / 2
        torch.testing.assert_close(saved[name], expected, rtol=1e-6, atol=1e-7)
    assert any(not torch.equal(saved[n], live[3][n]) for n in parameters)

    # Buffers: batch-norm statistics of the averaged weights, from one pass over the training data.
    reference = mmfuse.build_model(None, **config["model"])
    reference.load_state_dict(saved)
    from mmfuse.data import build_dataset

    prep = reference.preprocessing
    dataset = build_dataset(
        {"root": str(release)},
        "train",
        train=True,
        img_size=prep["img_size"],
        mean=prep["mean"],
        std=prep["std"],
    )
    batches = LoaderBatches(dataset, batch_size=8, seed=0, context=DistContext(), device=torch.device("cpu"))
    with torch.no_grad():
        update_bn(batches.epoch(config["train"]["epochs"]), _PairInput(reference))
    running = [n for n in saved if n.endswith("running_mean") or n.endswith("running_var")]
    assert running, "the tiny model has batch-norm layers"
    for name in running:
        torch.testing.assert_close(saved[name], reference.state_dict()[name])
    assert any(not torch.equal(saved[n], live[3][n]) for n in running)
    # What the run evaluated is what it saved.
    assert result.metrics["head_weights"] == pytest.approx(
        from_pretrained(run / "model").head_weights_dict, abs=1e-6
    )


def test_a_failing_final_evaluation_keeps_the_trained_model(tmp_path):
    release = make_release(tmp_path / "derm7pt")
    config = tiny_config(
        release, train={"epochs": 2, "swa": {"epochs": 1}}, evaluation={"splits": ["holdout"]}
    )
    with pytest.raises(Exception, match="holdout"):
        train(config, tmp_path / "run", progress=False)
    model = from_pretrained(tmp_path / "run" / "model")
    assert isinstance(model, mmfuse.FusionModel)
