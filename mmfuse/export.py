"""ONNX export of a model's final prediction, optional int8 dynamic quantisation, and their checks.

The exported graph takes two normalised NCHW float tensors named ``primary`` and ``auxiliary`` (any
batch size, the model's ``img_size``) and, for a model with a metadata input, a third float tensor
``metadata`` ``[batch, size]`` (the encoded vector of :meth:`FusionModel.encode_metadata`); it returns
one output per task, in task order and named after the task: the final class probabilities of Eq. 4
with the model's stored head weights. The model's
config (tasks and class names, input size, mean, std, head weights) travels in the ONNX metadata under
``mmfuse_config``, so a deployment needs the .onnx file alone. Every export is checked against torch on
onnxruntime before it is moved into place; a failed check leaves no file behind.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import statistics
import tempfile
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mmfuse.errors import ExportError, UsageError
from mmfuse.fileio import check_output_file, replace_file
from mmfuse.hub import FusionModel, hub_config
from mmfuse.progress import Steps

INPUT_NAMES = ("primary", "auxiliary")
METADATA_INPUT = "metadata"
DEFAULT_OPSET = 17
PARITY_TOLERANCE = 1e-4
METADATA_KEY = "mmfuse_config"
# Quantised by default: the linear layers (Swin's attention and MLPs, the heads). onnxruntime's CPU
# ConvInteger kernel is slower than its fp32 convolution, so quantising convolutions too made
# ammfm-swin slower than fp32 (docs/deploy.md); they stay fp32, which also keeps them exact.
INT8_OP_TYPES = ("MatMul", "Gemm")


class FinalProbabilities(nn.Module):
    """``forward(*images)`` → the tuple of per-task final probabilities, in task order.

    ``modalities`` names the inputs: both (Eq. 4), or one of them alone (that branch's head, as
    :meth:`FusionModel.predict` answers when the other image is missing). With both images, a model with a
    metadata input takes it last (``input_names``).
    """

    def __init__(self, model: FusionModel, modalities: tuple[str, ...] = INPUT_NAMES) -> None:
        super().__init__()
        if not modalities or set(modalities) - set(INPUT_NAMES) or len(set(modalities)) != len(modalities):
            raise UsageError(f"modalities must be a non-empty subset of {INPUT_NAMES}, got {modalities}")
        self.model = model
        self.modalities = tuple(m for m in INPUT_NAMES if m in modalities)
        self.input_names = self.modalities + (
            (METADATA_INPUT,) if _takes_metadata(model, self.modalities) else ()
        )
        self.task_names = [task.name for task in model.tasks]

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        probabilities = self.model.predict(**dict(zip(self.input_names, inputs, strict=True)))
        return tuple(probabilities[name] for name in self.task_names)


def _takes_metadata(model: FusionModel, modalities: tuple[str, ...]) -> bool:
    """Whether a graph of these image inputs needs the metadata too (only the fusion head reads it)."""
    return bool(getattr(model, "uses_metadata", False)) and set(modalities) == set(INPUT_NAMES)


@dataclass
class QuantizationReport:
    """Size and output change of the int8 model against the fp32 one, on the same inputs."""

    path: Path
    size_bytes: int
    fp32_size_bytes: int
    max_abs_diff: float  # largest probability change
    top1_agreement: dict[str, float]  # per task: fraction of inputs whose predicted class is unchanged
    num_inputs: int

    @property
    def size_ratio(self) -> float:
        return self.size_bytes / self.fp32_size_bytes


@dataclass
class ExportReport:
    """Where the graph went, its size, and its largest deviation from torch."""

    path: Path
    size_bytes: int
    max_abs_diff: float
    num_inputs: int
    int8: QuantizationReport | None = None
    latency_ms: dict[str, float] = field(default_factory=dict)


def _require_onnx():
    try:
        import onnx
        import onnxruntime
    except ImportError as exc:
        raise ExportError(
            f"ONNX export needs onnx and onnxruntime: pip install 'mmfuse[onnx]' ({exc})"
        ) from None
    return onnx, onnxruntime


@contextlib.contextmanager
def _quiet_tools():
    """Silence the exporter's expected tracer warnings and the quantiser's root-logger advice."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter is deprecated
            yield
    finally:
        root.setLevel(level)


def example_inputs(
    model: FusionModel, batch: int, seed: int = 0, modalities: tuple[str, ...] = INPUT_NAMES
) -> dict[str, torch.Tensor]:
    """Random normalised inputs of the model's size (a seeded generator: reports are reproducible), and a
    random 0/1 ``metadata`` vector when the model takes one with these images."""
    size = model.preprocessing["img_size"]
    generator = torch.Generator().manual_seed(seed)
    inputs = {name: torch.randn(batch, 3, size, size, generator=generator) for name in modalities}
    if _takes_metadata(model, tuple(modalities)):
        size = model.metadata_encoding.size
        inputs[METADATA_INPUT] = (torch.rand(batch, size, generator=generator) > 0.5).float()
    return inputs


def onnx_session(path: str | os.PathLike, threads: int | None = None):
    """A CPU onnxruntime session (``threads`` intra-op threads; onnxruntime's default when None)."""
    _, ort = _require_onnx()
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def graph_inputs(session) -> tuple[str, ...]:
    """The modalities an exported graph takes, in :data:`INPUT_NAMES` order."""
    names = {i.name for i in session.get_inputs()}
    return tuple(m for m in INPUT_NAMES if m in names)


def _run(session, inputs: Mapping[str, torch.Tensor]) -> list[np.ndarray]:
    wanted = [i.name for i in session.get_inputs()]
    missing = [name for name in wanted if name not in inputs]
    if missing:
        raise UsageError(f"the ONNX graph takes {wanted}; these inputs are missing: {missing}")
    return session.run(None, {name: inputs[name].numpy() for name in wanted})


def _torch_outputs(model: FusionModel, inputs: Mapping[str, torch.Tensor]) -> list[np.ndarray]:
    probabilities = model.predict(**inputs)
    return [probabilities[task.name].numpy() for task in model.tasks]


def _max_abs_diff(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    return max(float(np.abs(x - y).max()) for x, y in zip(a, b, strict=True))


def export_onnx(
    model: FusionModel,
    path: str | os.PathLike,
    *,
    opset: int = DEFAULT_OPSET,
    check_batch: int = 3,
    tolerance: float = PARITY_TOLERANCE,
    modalities: tuple[str, ...] = INPUT_NAMES,
) -> ExportReport:
    """Export ``model`` to ``path`` and check onnxruntime against torch on a random batch.

    The graph is traced with batch 2 and checked with ``check_batch`` (3 by default), so the check also
    proves the batch axis is dynamic. Raises :class:`ExportError` when a probability differs by more
    than ``tolerance``; ``path`` is then left untouched. ``modalities=("primary",)`` exports the
    primary branch alone (one input, the primary head's probabilities) for cases without the auxiliary
    image.
    """
    onnx, _ = _require_onnx()
    path = check_output_file(path)
    model = model.eval()
    wrapper = FinalProbabilities(model, tuple(modalities)).eval()
    trace_inputs = example_inputs(model, 2, seed=1, modalities=wrapper.modalities)
    output_names = wrapper.task_names
    dynamic_axes = {name: {0: "batch"} for name in (*wrapper.input_names, *output_names)}
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        staged = Path(tmp) / path.name
        with torch.no_grad(), _quiet_tools():
            torch.onnx.export(
                wrapper,
                tuple(trace_inputs.values()),
                str(staged),
                input_names=list(wrapper.input_names),
                output_names=output_names,
                dynamic_axes=dynamic_axes,
                opset_version=opset,
                dynamo=False,  # the TorchScript exporter: no onnxscript dependency, dynamic batch via axes
            )
        graph = onnx.load(str(staged))
        onnx.helper.set_model_props(graph, {METADATA_KEY: json.dumps(hub_config(model))})
        onnx.save(graph, str(staged))
        inputs = example_inputs(model, check_batch, modalities=wrapper.modalities)
        difference = _max_abs_diff(_run(onnx_session(staged), inputs), _torch_outputs(model, inputs))
        if not difference <= tolerance:
            raise ExportError(
                f"onnxruntime differs from torch by {difference:.2e} (> {tolerance:.0e}) on a batch of "
                f"{check_batch}; {path} was not written"
            )
        replace_file(staged, path)
    return ExportReport(path, path.stat().st_size, difference, check_batch)


def int8_path(fp32_path: str | os.PathLike) -> Path:
    """``model.onnx`` → ``model.int8.onnx``."""
    fp32_path = Path(fp32_path)
    return fp32_path.with_name(f"{fp32_path.stem}.int8{fp32_path.suffix or '.onnx'}")


def quantize_int8(
    fp32_path: str | os.PathLike,
    model: FusionModel,
    out_path: str | os.PathLike | None = None,
    *,
    num_inputs: int = 16,
    op_types: tuple[str, ...] | None = INT8_OP_TYPES,
) -> QuantizationReport:
    """Dynamic int8 quantisation (weights int8, activations quantised at run time; no calibration data).

    ``op_types`` are the ONNX operators to quantise (:data:`INT8_OP_TYPES` by default; ``None`` means
    every type onnxruntime can quantise). Reports the size and, on ``num_inputs`` random inputs, the
    largest probability change and how often each task's predicted class is unchanged against fp32.
    """
    _require_onnx()
    from onnxruntime.quantization import QuantType, quantize_dynamic

    fp32_path = Path(fp32_path)
    out_path = check_output_file(out_path if out_path is not None else int8_path(fp32_path))
    with tempfile.TemporaryDirectory(dir=out_path.parent) as tmp, Steps(3, "int8") as steps:
        staged = Path(tmp) / out_path.name
        with _quiet_tools():
            quantize_dynamic(
                str(fp32_path),
                str(staged),
                weight_type=QuantType.QInt8,
                op_types_to_quantize=list(op_types) if op_types is not None else None,
            )
        steps.step("quantised")
        fp32_session = onnx_session(fp32_path)
        inputs = example_inputs(model, num_inputs, seed=2, modalities=graph_inputs(fp32_session))
        reference = _run(fp32_session, inputs)
        steps.step(f"fp32 graph on {num_inputs} inputs")
        quantized = _run(onnx_session(staged), inputs)
        steps.step(f"int8 graph on {num_inputs} inputs")
        replace_file(staged, out_path)
    agreement = {
        task.name: float((ref.argmax(-1) == q.argmax(-1)).mean())
        for task, ref, q in zip(model.tasks, reference, quantized, strict=True)
    }
    return QuantizationReport(
        path=out_path,
        size_bytes=out_path.stat().st_size,
        fp32_size_bytes=fp32_path.stat().st_size,
        max_abs_diff=_max_abs_diff(reference, quantized),
        top1_agreement=agreement,
        num_inputs=num_inputs,
    )


@dataclass
class DatasetAccuracy:
    """Per-task accuracy of each ONNX graph on the cases of a dataset split it can answer."""

    num_cases: int
    accuracy: dict[str, dict[str, float]]  # graph name -> task -> accuracy

    def mean(self, graph: str) -> float:
        return statistics.fmean(self.accuracy[graph].values())


def dataset_accuracy(
    model: FusionModel,
    onnx_paths: Mapping[str, str | os.PathLike],
    dataset,
    *,
    batch_size: int = 32,
) -> DatasetAccuracy:
    """Accuracy of each graph on ``dataset`` (e.g. from :func:`mmfuse.evaluation.evaluate.evaluation_dataset`).

    Cases without an auxiliary image are left out when a graph takes both images.
    """
    from mmfuse.evaluation.metrics import accuracy
    from mmfuse.runtime.data import evaluation_loader

    sessions = {name: onnx_session(path) for name, path in onnx_paths.items()}
    needs_auxiliary = any("auxiliary" in graph_inputs(session) for session in sessions.values())
    outputs: dict[str, list[list[np.ndarray]]] = {name: [] for name in sessions}
    labels = []
    loader = evaluation_loader(dataset, batch_size=batch_size)
    with Steps(len(loader), f"accuracy of {' and '.join(sessions)}", unit="batch") as steps:
        for batch in loader:
            keep = (
                batch["auxiliary_present"].bool()
                if needs_auxiliary
                else torch.ones(len(batch["labels"]), dtype=torch.bool)
            )
            if keep.any():
                inputs = {name: batch[name][keep].float() for name in INPUT_NAMES}
                if METADATA_INPUT in batch:
                    inputs[METADATA_INPUT] = batch[METADATA_INPUT][keep].float()
                for name, session in sessions.items():
                    outputs[name].append(_run(session, inputs))
                labels.append(batch["labels"][keep])
            steps.step()
    if not labels:
        raise UsageError("no case of the split has both images")
    labels = torch.cat(labels)
    result = {
        name: {
            task.name: accuracy(torch.from_numpy(np.concatenate([b[i] for b in batches])), labels[:, i])
            for i, task in enumerate(model.tasks)
        }
        for name, batches in outputs.items()
    }
    return DatasetAccuracy(len(labels), result)


def measure_latency(
    model: FusionModel,
    onnx_paths: Mapping[str, str | os.PathLike],
    *,
    batch: int = 1,
    repeats: int = 20,
    warmup: int = 2,
    rounds: int = 4,
    threads: int | None = None,
) -> dict[str, float]:
    """Median CPU milliseconds per batch: ``"torch"`` and one entry per ONNX graph, with equal threads.

    The engines take turns in ``rounds`` blocks each, so load that drifts over time (a shared machine)
    biases none of them; each block starts with an untimed run, so thread pools still spinning after
    the previous engine's block do not count against the next one.
    """
    threads = threads or torch.get_num_threads()
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    sessions = {name: onnx_session(path, threads) for name, path in onnx_paths.items()}
    modalities = {m for session in sessions.values() for m in graph_inputs(session)} or set(INPUT_NAMES)
    inputs = example_inputs(model, batch, modalities=tuple(m for m in INPUT_NAMES if m in modalities))
    runs = {"torch": lambda: model.predict(**inputs)}
    runs.update({name: functools.partial(_run, session, inputs) for name, session in sessions.items()})
    times: dict[str, list[float]] = {name: [] for name in runs}
    per_block = max(1, -(-repeats // rounds))
    try:
        for _ in range(warmup):
            for run in runs.values():
                run()
        for _ in range(rounds):
            for name, run in runs.items():
                run()
                for _ in range(per_block):
                    start = time.perf_counter()
                    run()
                    times[name].append((time.perf_counter() - start) * 1000)
    finally:
        torch.set_num_threads(previous)
    return {name: statistics.median(values) for name, values in times.items()}
