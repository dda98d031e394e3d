"""``mmfuse params``: our parameter counts beside the paper's."""

from __future__ import annotations

import argparse
import json

from mmfuse.cli.argtypes import add_threads_option, image_size


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "params",
        help="parameter counts of the paper's configurations and of the peer methods (Table 5), ours beside the paper's",
    )
    parser.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    parser.add_argument("--img-size", type=image_size, default=224)
    add_threads_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mmfuse.params import (
        PAPER_CONFIGURATIONS,
        PEER_CONFIGURATIONS,
        format_report,
        parameter_report,
        peer_report,
    )
    from mmfuse.progress import Steps
    from mmfuse.threads import set_threads

    set_threads(args.threads)
    with Steps(
        len(PAPER_CONFIGURATIONS) + len(PEER_CONFIGURATIONS), "building models", unit="model"
    ) as steps:
        rows = parameter_report(args.img_size, steps=steps) + peer_report(steps=steps)
    print(json.dumps(rows, indent=2) if args.json else format_report(rows))
    return 0
