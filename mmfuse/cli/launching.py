"""``--launcher inline|local|slurm``, ``--jobs N``, ``--launcher-option KEY=VALUE``: how a study's runs are
trained, shared by every command that trains many (``train --seeds``, ``reproduce``)."""

from __future__ import annotations

import argparse


def add_launcher_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("launching the runs (docs/training.md, 'Running a study on a cluster')")
    group.add_argument(
        "--launcher",
        default="inline",
        metavar="{inline,local,slurm}",  # checked by make_launcher: parsing must not import torch
        help="inline: one run after another here (default); local: --jobs at once on this machine; "
        "slurm: one job per run through submitit",
    )
    group.add_argument(
        "--jobs", type=int, default=1, metavar="N", help="--launcher local: runs trained at once (default 1)"
    )
    group.add_argument(
        "--launcher-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="--launcher slurm: a submitit parameter (partition=gpu, gpus_per_node=1, timeout_min=600, "
        "cpus_per_task=8...; cluster=local runs the jobs here); repeat for several",
    )


def launcher_from_args(args: argparse.Namespace):
    from mmfuse.training.launch import make_launcher, parse_launcher_options

    options = parse_launcher_options(args.launcher_option)
    return make_launcher(args.launcher, jobs=args.jobs, options=options)
