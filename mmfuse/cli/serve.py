"""``mmfuse serve MODEL [--host 127.0.0.1] [--port 7860]``: the demo page (Gradio) for a model."""

from __future__ import annotations

import argparse

from mmfuse.cli.argtypes import add_threads_option, int_in_range, positive_number

# The page's own limit (mmfuse.gradio_app.MAX_UPLOAD_MB); repeated here so `--help` does not import Gradio and torch.
DEFAULT_UPLOAD_MB = 20


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "serve", help="a web page to try a model: upload images, see predictions and where the model looked"
    )
    parser.add_argument("model", metavar="MODEL", help="a model directory, a run directory or a Hub name")
    parser.add_argument(
        "--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1: this machine only)"
    )
    parser.add_argument("--port", type=int_in_range(1, 65535), default=7860, help="port (default 7860)")
    parser.add_argument(
        "--max-upload-mb",
        type=positive_number,
        default=DEFAULT_UPLOAD_MB,
        metavar="MB",
        help=f"largest upload accepted, in MiB (default {DEFAULT_UPLOAD_MB})",
    )
    parser.add_argument(
        "--examples",
        metavar="DIR",
        help="folder for the synthetic example release (default: a temporary one)",
    )
    parser.add_argument("--device", default="auto", help="'auto', 'cpu' or 'cuda[:i]'")
    add_threads_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mmfuse.gradio_app import build_app, example_pairs
    from mmfuse.gradio_server import check_listen_address, launch
    from mmfuse.runs import load_run_or_model
    from mmfuse.runtime.device import select_device
    from mmfuse.threads import set_threads

    set_threads(args.threads)
    check_listen_address(args.host, args.port)  # before the model loads: a wrong host fails at once
    examples = example_pairs(args.examples) if args.examples else None
    model = load_run_or_model(args.model)
    app = build_app(model, examples=examples, device=select_device(args.device))

    def announce(url: str) -> None:  # only once the port is bound: the address printed is one that answers
        print(f"serving {args.model} on {url} (Ctrl-C stops)", flush=True)

    launch(app, host=args.host, port=args.port, max_upload_mb=args.max_upload_mb, on_ready=announce)
    return 0
