"""``mmfuse report RUN``: rebuild the run's self-contained ``report.html`` from its files."""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "report", help="rebuild RUN/report.html: config, curves, metrics with intervals, figures, cost"
    )
    parser.add_argument("run", metavar="RUN", help="a training run directory")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mmfuse.evaluation.html_report import write_report

    path = write_report(args.run)
    print(f"report written to {path}")
    return 0
