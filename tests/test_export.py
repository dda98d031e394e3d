"""Deployment: ONNX export parity, int8 quantisation, `mmfuse export`, and missing-modality inference."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch

import mmfuse
from mmfuse.cli import main
from mmfuse.export import ExportError, export_onnx, int8_path, onnx_session, quantize_int8

HEAD_WEIGHTS = {"primary": 0.6, "auxiliary": 0.1, "fusion": 0.3}


@pytest.fixture
def tiny_model(tiny_model_kwargs):
    torch.manual_seed(0)
    model = mmfuse.build_model("ammfm-swin", **tiny_model_kwargs).eval()
    model.set_head_weights(HEAD_WEIGHTS)
    return model


def eq4(model, primary, auxiliary) -> dict[str, torch.Tensor]:
    """Eq. 4 written out from the three heads' logits."""
    with torch.no_grad():
        logits = model(primary=primary, auxiliary=auxiliary).logits
    return {
        task.name: sum(w * logits[head][task.name].softmax(-1) for head, w in HEAD_WEIGHTS.items())
        for task in model.tasks
    }


@pytest.mark.slow
def test_onnx_graph_matches_torch_for_any_batch_and_returns_eq4_per_task(tiny_model, tmp_path, image_pair):
    report = export_onnx(tiny_model, tmp_path / "model.onnx")
    assert report.max_abs_diff <= 1e-4
    session = onnx_session(report.path)
    assert [i.name for i in session.get_inputs()] == ["primary", "auxiliary"]
    assert [o.name for o in session.get_outputs()] == [t.name for t in tiny_model.tasks]
    generator = torch.Generator().manual_seed(5)
    primary, auxiliary = (torch.randn(5, 3, 64, 64, generator=generator) for _ in range(2))
    outputs = session.run(None, {"primary": primary.numpy(), "auxiliary": auxiliary.numpy()})
    expected = eq4(tiny_model, primary, auxiliary)
    for task, output in zip(tiny_model.tasks, outputs, strict=True):
        assert output.shape == (5, task.num_classes)
        np.testing.assert_allclose(output, expected[task.name].numpy(), atol=1e-4, rtol=0)
    metadata = {p.key: p.value for p in onnx.load(str(report.path)).metadata_props}
    stored = json.loads(metadata["mmfuse_config"])
    assert stored["head_weights"] == pytest.approx(HEAD_WEIGHTS)
    assert stored["tasks"] == tiny_model.config["tasks"]
    assert stored["img_size"] == 64


@pytest.mark.slow
def test_a_primary_only_graph_answers_with_the_primary_head(tiny_model, tmp_path, image_pair):
    assert (
        main(
            [
                "export",
                str(tiny_model.save_pretrained(tmp_path / "m")),
                "--onnx",
                str(tmp_path / "p.onnx"),
                "--primary-only",
            ]
        )
        == 0
    )
    session = onnx_session(tmp_path / "p.onnx")
    assert [i.name for i in session.get_inputs()] == ["primary"]
    primary, _ = image_pair
    outputs = session.run(None, {"primary": primary.numpy()})
    with torch.no_grad():
        logits = tiny_model.heads["primary"](tiny_model.primary_encoder(primary)[-1].mean((2, 3)))
    for task, output in zip(tiny_model.tasks, outputs, strict=True):
        np.testing.assert_allclose(output, logits[task.name].softmax(-1).numpy(), atol=1e-4, rtol=0)


@pytest.mark.slow
def test_a_failed_parity_check_leaves_no_file_behind(tiny_model, tmp_path):
    with pytest.raises(ExportError, match="differs from torch"):
        export_onnx(tiny_model, tmp_path / "model.onnx", tolerance=-1.0)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_int8_quantisation_shrinks_the_graph_and_reports_the_change(tiny_model, tmp_path, image_pair):
    fp32 = export_onnx(tiny_model, tmp_path / "model.onnx").path
    report = quantize_int8(fp32, tiny_model, num_inputs=4)
    assert report.path == tmp_path / "model.int8.onnx" == int8_path(fp32)
    assert report.size_bytes < 0.75 * report.fp32_size_bytes
    operators = {node.op_type for node in onnx.load(str(report.path)).graph.node}
    assert "MatMulInteger" in operators and "ConvInteger" not in operators  # linear layers int8, convs fp32
    assert set(report.top1_agreement) == {t.name for t in tiny_model.tasks}
    assert all(0.0 <= v <= 1.0 for v in report.top1_agreement.values())
    primary, auxiliary = image_pair
    outputs = onnx_session(report.path).run(
        None, {"primary": primary.numpy(), "auxiliary": auxiliary.numpy()}
    )
    expected = eq4(tiny_model, primary, auxiliary)
    for task, output in zip(tiny_model.tasks, outputs, strict=True):
        np.testing.assert_allclose(output.sum(-1), 1.0, atol=1e-5)
        assert np.abs(output - expected[task.name].numpy()).max() <= max(report.max_abs_diff, 0.05)


@pytest.mark.slow
def test_cli_export_of_a_run_writes_both_graphs_and_reports_as_json(tiny_model, tmp_path, capsys):
    tiny_model.save_pretrained(tmp_path / "run" / "model")
    out = tmp_path / "deploy" / "model.onnx"
    assert main(["export", str(tmp_path / "run"), "--onnx", str(out), "--int8", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["path"] == str(out) and out.is_file()
    assert report["max_abs_diff"] <= 1e-4
    assert report["int8"]["path"] == str(tmp_path / "deploy" / "model.int8.onnx")
    assert report["int8"]["size_bytes"] == (tmp_path / "deploy" / "model.int8.onnx").stat().st_size


def test_cli_export_of_a_missing_model_is_one_line_naming_it(tmp_path, capsys):
    assert main(["export", f"local-dir:{tmp_path / 'nothing'}", "--onnx", str(tmp_path / "m.onnx")]) == 1
    assert "nothing" in capsys.readouterr().err
    assert not (tmp_path / "m.onnx").exists()


def test_a_loaded_model_without_the_auxiliary_image_runs_the_primary_branch_alone(
    tiny_model, tmp_path, image_pair, monkeypatch
):
    model = mmfuse.from_pretrained(tiny_model.save_pretrained(tmp_path))
    primary, auxiliary = image_pair

    def must_not_run(*args, **kwargs):
        raise AssertionError("the fusion blocks and the other branch must be skipped")

    with torch.no_grad():
        primary_head = model.heads["primary"](model.primary_encoder(primary)[-1].mean((2, 3)))
        auxiliary_head = model.heads["auxiliary"](model.auxiliary_encoder(auxiliary)[-1].mean((2, 3)))
    for block in model.fusion_blocks.values():
        monkeypatch.setattr(block, "forward", must_not_run)
    monkeypatch.setattr(model.auxiliary_encoder, "forward_stage", must_not_run)
    alone = model.predict(primary=primary, auxiliary=None)
    monkeypatch.undo()
    monkeypatch.setattr(model.primary_encoder, "forward_stage", must_not_run)
    clinical_only = model.predict(primary=None, auxiliary=auxiliary)
    for task in model.tasks:
        torch.testing.assert_close(alone[task.name], primary_head[task.name].softmax(-1))
        torch.testing.assert_close(clinical_only[task.name], auxiliary_head[task.name].softmax(-1))


@pytest.mark.slow
def test_int8_accuracy_change_is_measured_on_a_dataset_split(tiny_model, tmp_path, capsys):
    from mmfuse.evaluation.evaluate import evaluation_dataset
    from mmfuse.export import dataset_accuracy

    release = tmp_path / "release"
    assert main(["data", "synth", str(release), "--cases", "24", "--size", "32", "--seed", "0"]) == 0
    capsys.readouterr()
    out = tmp_path / "model.onnx"
    directory = tiny_model.save_pretrained(tmp_path / "model")
    assert (
        main(["export", str(directory), "--onnx", str(out), "--int8", "--data", str(release), "--json"]) == 0
    )
    reported = json.loads(capsys.readouterr().out)["accuracy"]
    assert set(reported["onnxruntime-int8"]) == {t.name for t in tiny_model.tasks}

    dataset = evaluation_dataset(tiny_model, {"root": str(release), "format": "derm7pt"}, "test")
    both = [case for case in (dataset[i] for i in range(len(dataset))) if bool(case["auxiliary_present"])]
    labels = torch.stack([case["labels"] for case in both])
    expected = tiny_model.predict(
        primary=torch.stack([case["primary"] for case in both]),
        auxiliary=torch.stack([case["auxiliary"] for case in both]),
    )
    measured = dataset_accuracy(tiny_model, {"fp32": out}, dataset)
    assert measured.num_cases == reported["num_cases"] == len(both)
    for i, task in enumerate(tiny_model.tasks):
        torch_accuracy = float((expected[task.name].argmax(-1) == labels[:, i]).float().mean())
        assert measured.accuracy["fp32"][task.name] == pytest.approx(torch_accuracy)
        assert reported["onnxruntime"][task.name] == pytest.approx(torch_accuracy)
