"""The ``mmfuse`` command line (also ``python -m mmfuse``).

Each module in this package that defines ``add_parser(subparsers)`` is a subcommand; it sets
``func`` on its parser and imports heavy dependencies inside that function, so ``mmfuse --help``
stays fast. Errors that mmfuse raises on purpose are printed as one line and exit with status 1.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

from mmfuse.errors import MmfuseError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mmfuse", description="Asymmetric multimodal fusion for medical images."
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        if hasattr(module, "add_parser"):
            module.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (MmfuseError, FileNotFoundError, NotADirectoryError, PermissionError, ValueError) as exc:
        print(f"mmfuse {args.command}: error: {exc}", file=sys.stderr)
        return 1
