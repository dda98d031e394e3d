"""``mmfuse predict MODEL --primary IMG [--auxiliary IMG] [--json]``: one case, every task.

``mmfuse predict RUN --data ROOT --benchmark --out FILE.csv``: a challenge submission for the unlabelled
benchmark part of a dataset (MILK10k's ``MILK10k_Test_Input``), in the sample submission's layout.
"""

from __future__ import annotations

import argparse
import json
import sys

from mmfuse.cli.argtypes import add_image_pair_options, add_threads_option, check_image_pair
from mmfuse.errors import UsageError


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "predict", help="per-task probabilities and predicted classes for one image pair"
    )
    parser.add_argument("model", metavar="MODEL", help="a model directory, a run directory or a Hub name")
    add_image_pair_options(parser, required=False)
    parser.add_argument(
        "--benchmark",
        action="store_true",
        help="predict the dataset's unlabelled benchmark part (--data ROOT) into a submission file (--out)",
    )
    parser.add_argument(
        "--data", metavar="ROOT", help="with --benchmark: the dataset folder (default: the run's)"
    )
    parser.add_argument("--out", metavar="FILE.csv", help="with --benchmark: the submission file to write")
    parser.add_argument(
        "--tta", action="store_true", help="with --benchmark: average the test-time augmentation views"
    )
    parser.add_argument(
        "--metadata",
        action="append",
        metavar="FIELD=VALUE",
        help="patient metadata for a model that takes it (repeat: --metadata sex=male --metadata age=54)",
    )
    parser.add_argument(
        "--no-temperature",
        action="store_true",
        help="ignore the model's fitted temperatures (the raw softmax of each head)",
    )
    parser.add_argument("--device", default="auto", help="'auto', 'cpu' or 'cuda[:i]'")
    add_threads_option(parser)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(func=run)


def format_prediction(result: dict) -> str:
    lines = []
    width = max(len(name) for name in result["tasks"])
    for name, entry in result["tasks"].items():
        probs = "  ".join(f"{c} {p:.3f}" for c, p in entry["probabilities"].items())
        lines.append(f"{name.ljust(width)}  {entry['predicted']:<5}  ({probs})")
    if not result["auxiliary_used"]:
        lines.append("no auxiliary image: the primary head answered alone")
    elif result.get("metadata_used") is False:
        lines.append("no metadata: the heads that do not read it answered")
    if "seven_point" in result:
        sp = result["seven_point"]
        verdict = "melanoma suspected" if sp["melanoma"] else "below the melanoma threshold"
        lines.append(f"seven-point score: {sp['score']} ({verdict}, threshold {sp['threshold']})")
    return "\n".join(lines)


def print_notes(prediction: dict) -> None:
    """What decoding changed about an image (a greyscale or CMYK file), on stderr beside the table."""
    for note in prediction.get("notes", ()):
        print(f"note: {note}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    from mmfuse.evaluation.pair import predict_pair
    from mmfuse.runs import load_run_or_model
    from mmfuse.runtime.device import select_device
    from mmfuse.threads import set_threads

    if args.benchmark:
        return run_benchmark(args)
    if not args.primary:
        raise UsageError(
            "give --primary IMG (one case), or --benchmark --out FILE.csv (a dataset's benchmark)"
        )
    check_image_pair(args)
    set_threads(args.threads)
    metadata = None
    if args.metadata:
        metadata = {}
        for item in args.metadata:
            field, sep, value = item.partition("=")
            if not sep or not field.strip():
                raise UsageError(f"--metadata takes FIELD=VALUE, got {item!r}")
            metadata[field.strip()] = value.strip()
    model = load_run_or_model(args.model)
    result = predict_pair(
        model,
        args.primary,
        args.auxiliary,
        device=select_device(args.device),
        metadata=metadata,
        calibrated=not args.no_temperature,
    )
    if not args.json:  # the JSON holds them as its "notes" list
        print_notes(result)
    print(json.dumps(result, indent=2) if args.json else format_prediction(result))
    return 0


def run_benchmark(args: argparse.Namespace) -> int:
    from pathlib import Path

    from mmfuse.cli.dataargs import run_data_section
    from mmfuse.evaluation.evaluate import predict_benchmark
    from mmfuse.runs import load_run_or_model
    from mmfuse.runtime.device import select_device
    from mmfuse.threads import set_threads

    if not args.out:
        raise UsageError("--benchmark writes a submission file: give --out FILE.csv")
    if args.primary or args.auxiliary:
        raise UsageError("--benchmark predicts a whole dataset part; leave out --primary/--auxiliary")
    out = Path(args.out)
    if out.exists():
        raise UsageError(f"--out {out} exists; choose a new file (nothing was overwritten)")
    config = run_data_section(args.model)
    if args.data:
        config["root"] = args.data
    if "root" not in config:
        raise UsageError("--benchmark needs --data ROOT (the dataset folder) unless MODEL is a run directory")
    set_threads(args.threads)
    model = load_run_or_model(args.model)
    device = select_device(args.device)
    path = predict_benchmark(model.to(device), config, out, device=device, tta=args.tta)
    print(f"wrote the submission for the benchmark of {config['root']} to {path}")
    return 0
