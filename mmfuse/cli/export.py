"""``mmfuse export MODEL --onnx OUT.onnx [--int8] [--latency]``: a model for offline deployment."""

from __future__ import annotations

import argparse
import json

from mmfuse.cli.argtypes import int_in_range, positive_int
from mmfuse.cli.dataargs import add_data_options, data_section

# The opsets torch's TorchScript ONNX exporter writes (the one mmfuse.export uses).
ONNX_OPSETS = (7, 20)


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "export",
        help="export a model's final per-task probabilities to ONNX (optionally int8), checked against torch",
    )
    parser.add_argument(
        "model", help="a model directory, Hub repo id, short name, local-dir: or hf-hub: name"
    )
    parser.add_argument("--onnx", required=True, metavar="OUT.onnx", help="where to write the ONNX graph")
    parser.add_argument(
        "--int8",
        action="store_true",
        help="also write OUT.int8.onnx, dynamically quantised, and report the change",
    )
    parser.add_argument(
        "--int8-ops",
        choices=("linear", "all"),
        default="linear",
        help="what --int8 quantises: 'linear' (MatMul/Gemm; convolutions stay fp32, the fastest on CPU) or "
        "'all' (convolutions too: smaller for CNNs, but slower)",
    )
    parser.add_argument(
        "--primary-only",
        action="store_true",
        help="export the primary branch alone (input `primary`, the primary head's probabilities), for "
        "cases without the auxiliary image",
    )
    add_data_options(
        parser,
        "with --int8: also compare fp32 and int8 accuracy on this dataset's split (a run's format and schema apply)",
    )
    parser.add_argument("--split", default="test", help="split of --data (default: test)")
    parser.add_argument(
        "--opset", type=int_in_range(*ONNX_OPSETS), default=17, help="ONNX opset (default: 17)"
    )
    parser.add_argument("--revision", help="Hub revision (branch, tag or commit) of MODEL")
    parser.add_argument(
        "--latency", action="store_true", help="measure median CPU latency of torch and onnxruntime"
    )
    parser.add_argument("--batch", type=positive_int, default=1, help="batch size for --latency (default: 1)")
    parser.add_argument(
        "--repeats", type=positive_int, default=20, help="timed runs for --latency (default: 20)"
    )
    parser.add_argument("--threads", type=positive_int, help="CPU threads for --latency (default: torch's)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(func=run)


def _megabytes(size: int) -> str:
    return f"{size / 2**20:.1f} MiB"


def run(args: argparse.Namespace) -> int:
    from mmfuse.export import INT8_OP_TYPES, export_onnx, int8_path, measure_latency, quantize_int8
    from mmfuse.fileio import check_output_file
    from mmfuse.runs import load_run_or_model

    check_output_file(args.onnx)  # before the model is loaded and traced
    if args.int8:
        check_output_file(int8_path(args.onnx))
    model = load_run_or_model(args.model, revision=args.revision)
    modalities = ("primary",) if args.primary_only else ("primary", "auxiliary")
    report = export_onnx(model, args.onnx, opset=args.opset, modalities=modalities)
    graphs = {"onnxruntime": report.path}
    if args.int8:
        op_types = INT8_OP_TYPES if args.int8_ops == "linear" else None
        report.int8 = quantize_int8(report.path, model, op_types=op_types)
        graphs["onnxruntime-int8"] = report.int8.path
    accuracy = None
    if args.data:
        from mmfuse.evaluation.evaluate import evaluation_dataset
        from mmfuse.export import dataset_accuracy

        dataset = evaluation_dataset(model, data_section(args, args.model), args.split)
        accuracy = dataset_accuracy(model, graphs, dataset)
    if args.latency:
        report.latency_ms = measure_latency(
            model, graphs, batch=args.batch, repeats=args.repeats, threads=args.threads
        )
    if args.json:
        data = _as_data(report)
        if accuracy is not None:
            data["accuracy"] = {"split": args.split, "num_cases": accuracy.num_cases, **accuracy.accuracy}
        print(json.dumps(data, indent=2))
        return 0
    print(
        f"wrote {report.path} ({_megabytes(report.size_bytes)}); onnxruntime vs torch: max |Δp| = "
        f"{report.max_abs_diff:.1e} on a batch of {report.num_inputs}"
    )
    if report.int8 is not None:
        q = report.int8
        worst = min(q.top1_agreement, key=q.top1_agreement.get)
        mean = sum(q.top1_agreement.values()) / len(q.top1_agreement)
        print(
            f"wrote {q.path} ({_megabytes(q.size_bytes)}, {q.size_ratio:.2f}× fp32); int8 vs fp32 on "
            f"{q.num_inputs} random inputs: max |Δp| = {q.max_abs_diff:.3f}, predicted class unchanged "
            f"{mean:.1%} on average (lowest: {worst} {q.top1_agreement[worst]:.1%})"
        )
    if accuracy is not None:
        means = ", ".join(f"{name} {accuracy.mean(name):.1%}" for name in graphs)
        print(f"mean task accuracy on {args.data} split {args.split} ({accuracy.num_cases} cases): {means}")
    if report.latency_ms:
        timings = ", ".join(f"{name} {ms:.1f} ms" for name, ms in report.latency_ms.items())
        print(f"CPU latency, batch {args.batch}, median of {args.repeats}: {timings}")
    return 0


def _as_data(report) -> dict:
    data = {
        "path": str(report.path),
        "size_bytes": report.size_bytes,
        "max_abs_diff": report.max_abs_diff,
        "latency_ms": report.latency_ms,
    }
    if report.int8 is not None:
        q = report.int8
        data["int8"] = {
            "path": str(q.path),
            "size_bytes": q.size_bytes,
            "size_ratio": q.size_ratio,
            "max_abs_diff": q.max_abs_diff,
            "top1_agreement": q.top1_agreement,
            "num_inputs": q.num_inputs,
        }
    return data
