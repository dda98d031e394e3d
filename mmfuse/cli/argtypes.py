"""Argument types that reject impossible values while parsing, so they never reach the library.

argparse turns the ``ArgumentTypeError`` into one usage line and exit status 2.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable


def int_in_range(low: int, high: int | None = None) -> Callable[[str], int]:
    """An ``int`` type accepting ``low <= value <= high`` (no upper bound when ``high`` is None)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low or (high is not None and value > high):
            bound = f"between {low} and {high}" if high is not None else f"at least {low}"
            raise argparse.ArgumentTypeError(f"must be {bound}, got {value}")
        return value

    parse.__name__ = "integer"
    return parse


positive_int = int_in_range(1)


def add_threads_option(
    parser: argparse.ArgumentParser, *, default: object = "auto", help: str | None = None
) -> None:
    """``--threads N|auto``: torch's CPU threads (``auto`` counts the cores other work leaves free)."""
    from mmfuse.threads import parse_threads

    parser.add_argument(
        "--threads",
        type=parse_threads,
        default=default,
        metavar="N",
        help=help or "CPU threads for torch (default: auto, the cores not busy with other work)",
    )


def dataset_format(text: str) -> str:
    """A registered dataset format's name (``--format``, ``mmfuse data check FORMAT``).

    A ``type``, not ``choices``: argparse formats ``choices`` into every help text, which would load the
    plugins (and torch) just to print ``--help``; a type reads the registry only when a value is given.
    """
    from mmfuse.data.formats import list_formats

    names = list_formats()
    if text not in names:
        raise argparse.ArgumentTypeError(f"unknown data format {text!r}; registered: {', '.join(names)}")
    return text


dataset_format.__name__ = "dataset format"


def key_value(text: str) -> tuple[str, str]:
    """``KEY=VALUE`` (a dataset format's own option, e.g. ``--option labels=labels.csv``)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.strip(), value


def add_format_options(parser: argparse.ArgumentParser) -> None:
    """``--schema`` and ``--option KEY=VALUE``: the options a dataset format reads besides ROOT."""
    parser.add_argument("--schema", metavar="SCHEMA.yaml", help="YAML schema (paired_csv)")
    add_option_argument(parser, "`mmfuse data formats` lists each format's")


def add_option_argument(parser: argparse.ArgumentParser, note: str) -> None:
    """``--option KEY=VALUE`` (repeatable) into ``args.format_options``: a dataset format's own option."""
    parser.add_argument(
        "--option",
        dest="format_options",
        type=key_value,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"an option of the dataset format (repeatable; {note})",
    )


def add_image_pair_options(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    """``--primary IMG`` (required unless told otherwise) and ``--auxiliary IMG``: one case's images,
    checked by :func:`check_image_pair`."""
    parser.add_argument(
        "--primary", required=required, metavar="IMG", help="the primary image (Derm7pt: dermoscopy)"
    )
    parser.add_argument(
        "--auxiliary", metavar="IMG", help="the auxiliary image (Derm7pt: clinical); optional"
    )


def check_image_pair(args: argparse.Namespace) -> None:
    """A missing ``--primary``/``--auxiliary`` file is named before any model is loaded."""
    from pathlib import Path

    for option, image in (("--primary", args.primary), ("--auxiliary", args.auxiliary)):
        if image is not None and not Path(image).is_file():
            raise FileNotFoundError(f"{option} image not found: {image}")
