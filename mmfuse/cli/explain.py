"""``mmfuse explain MODEL --primary IMG [--auxiliary IMG] --out DIR``: where the model looked, as PNG overlays."""

from __future__ import annotations

import argparse

from mmfuse.cli.argtypes import add_image_pair_options, add_threads_option, check_image_pair


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "explain",
        help="Grad-CAM per task and AAB attention over the primary image, as PNG overlays plus predictions.json",
    )
    parser.add_argument("model", metavar="MODEL", help="a model directory, a run directory or a Hub name")
    add_image_pair_options(parser)
    parser.add_argument(
        "--out", required=True, metavar="DIR", help="folder for the PNGs and predictions.json"
    )
    parser.add_argument(
        "--task", action="append", dest="tasks", metavar="TASK", help="only these tasks (repeatable)"
    )
    parser.add_argument(
        "--no-temperature", action="store_true", help="ignore the model's fitted temperatures"
    )
    parser.add_argument("--device", default="auto", help="'auto', 'cpu' or 'cuda[:i]'")
    add_threads_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mmfuse.cli.predict import format_prediction, print_notes
    from mmfuse.explain import explain
    from mmfuse.runs import load_run_or_model
    from mmfuse.runtime.device import select_device
    from mmfuse.threads import set_threads

    check_image_pair(args)
    set_threads(args.threads)
    model = load_run_or_model(args.model)
    device = select_device(args.device)
    result = explain(
        model.to(device),
        args.primary,
        args.auxiliary,
        tasks=args.tasks,
        device=device,
        calibrated=not args.no_temperature,
    )
    written = result.save(args.out)
    print_notes(result.prediction)
    print(format_prediction(result.prediction))
    print(f"wrote {len(written) - 1} overlays and predictions.json to {args.out}")
    return 0
