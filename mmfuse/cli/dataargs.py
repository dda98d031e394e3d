"""``--data/--format/--schema`` for commands that read a dataset with a trained model (evaluate, export).

A run directory remembers its dataset (``RUN/config.yaml``); pointing ``--data`` elsewhere keeps the
run's format and schema, so a model trained on a paired CSV dataset is evaluated as one.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mmfuse.cli.argtypes import add_option_argument, dataset_format


def add_data_options(parser: argparse.ArgumentParser, data_help: str) -> None:
    parser.add_argument("--data", metavar="ROOT", help=data_help)
    parser.add_argument(
        "--format",
        type=dataset_format,
        metavar="FORMAT",
        help="dataset format (`mmfuse data formats` lists them; default: the run's, else derm7pt)",
    )
    parser.add_argument(
        "--schema", metavar="SCHEMA.yaml", help="task schema of a paired_csv dataset (default: the run's)"
    )
    add_option_argument(parser, "default: the run's")


def run_data_section(model_arg: str) -> dict:
    """The dataset options of the run that ``model_arg`` names; ``{}`` for a model that is not a run."""
    from mmfuse.runs import RunDir
    from mmfuse.training.config import dataset_options, load_config

    run = RunDir.named_by(model_arg)
    if run is None or not run.config_file.is_file():
        return {}
    return dataset_options(load_config(run.config_file))


def data_section(args: argparse.Namespace, model_arg: str) -> dict | None:
    """The data section for ``--data/--format/--schema``, on top of the run's own; ``None`` when there is none."""
    config = run_data_section(model_arg)
    if args.data:
        config["root"] = args.data  # the run's format and schema still apply: the same kind of data elsewhere
    if args.format and args.format != config.get("format"):
        from mmfuse.data.formats import format_option_keys

        config["format"] = args.format
        for (
            key
        ) in format_option_keys():  # a schema (any format option) belongs to the format it was given with
            config.pop(key, None)
    if args.schema:
        config["schema"] = str(Path(args.schema))
    for key, value in getattr(args, "format_options", ()):
        config[key] = value
    if "root" not in config:
        return None
    config.setdefault("format", "derm7pt")
    return config
