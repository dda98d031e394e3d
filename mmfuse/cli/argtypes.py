"""Argument types that reject impossible values while parsing, so they never reach the library.

argparse turns the ``ArgumentTypeError`` into one usage line and exit status 2.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from mmfuse.limits import MAX_IMG_SIZE, MAX_RESAMPLES, MAX_SEED, MAX_WORKERS


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
seed_int = int_in_range(0, MAX_SEED)
image_size = int_in_range(1, MAX_IMG_SIZE)
worker_count = int_in_range(0, MAX_WORKERS)


def open_fraction(text: str) -> float:
    """A float strictly between 0 and 1 (an interval's coverage, ``--level``)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0.0 < value < 1.0:  # also false for NaN
        raise argparse.ArgumentTypeError(f"must lie strictly between 0 and 1, got {text}")
    return value


open_fraction.__name__ = "number"


def add_bootstrap_options(parser: argparse.ArgumentParser, *, resamples_help: str, low: int) -> None:
    """``--bootstrap B``, ``--bootstrap-seed`` and ``--level``, bounded while parsing.

    The resamples are capped (:data:`~mmfuse.limits.MAX_RESAMPLES`) because each one is a row of a
    ``[B, cases]`` matrix: ``--bootstrap 100000000000`` would ask for terabytes.
    """
    parser.add_argument(
        "--bootstrap",
        type=int_in_range(low, MAX_RESAMPLES),
        default=1000,
        metavar="B",
        help=f"{resamples_help} (default: 1000; at most {MAX_RESAMPLES})",
    )
    parser.add_argument(
        "--bootstrap-seed",
        type=seed_int,
        default=0,
        metavar="SEED",
        help=f"seed of the resamples, 0 to {MAX_SEED} (default: 0)",
    )
    parser.add_argument(
        "--level", type=open_fraction, default=0.95, help="coverage of the intervals (default: 0.95)"
    )


def positive_number(text: str) -> float:
    """A finite number above zero (``--max-upload-mb 0.5``); ``nan``, ``inf``, ``0`` and ``-1`` are refused."""
    import math

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number above 0, got {text!r}")
    return value


positive_number.__name__ = "number"


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
    from mmfuse.registry import list_dataset_formats

    names = list_dataset_formats()
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
