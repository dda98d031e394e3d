"""``mmfuse data``: synthesise, check, count and prepare paired-modality datasets."""

from __future__ import annotations

import argparse
import json
import sys

from mmfuse.errors import UsageError


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("data", help="synthesise, check, count and prepare datasets")
    commands = parser.add_subparsers(dest="data_command", required=True, metavar="ACTION")

    synth = commands.add_parser("synth", help="write a synthetic Derm7pt-format release")
    synth.add_argument("out", help="folder to create")
    synth.add_argument("--cases", type=int, default=200)
    synth.add_argument("--size", type=int, default=256, help="image side in pixels")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--workers", type=int, default=None, help="drawing threads (default: all cores)")
    synth.set_defaults(func=run_synth)

    probe = commands.add_parser("probe", help="logistic-regression learnability probe (needs scikit-learn)")
    probe.add_argument("format", choices=["derm7pt", "paired_csv"])
    probe.add_argument("root", help="dataset folder")
    probe.add_argument("--schema", help="YAML schema (paired_csv only)")
    probe.add_argument("--pixels", type=int, default=24, help="side of the downsampled images")
    probe.set_defaults(func=run_probe)

    for name, text in (
        ("check", "report every problem of a dataset (tables, splits, every image); exit 1 if any"),
        ("stats", "class counts per task and split, from the tables alone"),
        ("prepare", "decode and resize every image once into ROOT/.mmfuse-cache/SIZE"),
    ):
        sub = commands.add_parser(name, help=text)
        sub.add_argument("format", choices=["derm7pt", "paired_csv"])
        sub.add_argument("root", help="dataset folder")
        sub.add_argument("--schema", help="YAML schema (paired_csv only)")
        sub.add_argument(
            "--allow-outside-root",
            action="store_true",
            help="read image paths that lead outside ROOT (.., absolute paths, symlinks); refused by default",
        )
        if name == "stats":
            sub.add_argument("--json", action="store_true", help="print JSON instead of a table")
            sub.add_argument(
                "--metadata",
                action="store_true",
                help="also count missing and unknown metadata values per split (encoding fitted on train)",
            )
        if name == "prepare":
            sub.add_argument("--size", type=int, required=True, help="the model's input size")
        if name in ("check", "prepare"):
            sub.add_argument("--workers", type=int, default=None)
        sub.set_defaults(func={"check": run_check, "stats": run_stats, "prepare": run_prepare}[name])


def _config(args: argparse.Namespace) -> dict:
    if args.format == "paired_csv" and not args.schema:
        raise UsageError("paired_csv needs --schema SCHEMA.yaml")
    return {
        "format": args.format,
        "root": args.root,
        "schema": args.schema,
        "allow_outside_root": bool(getattr(args, "allow_outside_root", False)),
    }


def run_synth(args: argparse.Namespace) -> int:
    from mmfuse.data.synth import synthesize

    summary = synthesize(args.out, cases=args.cases, size=args.size, seed=args.seed, workers=args.workers)
    print(
        f"wrote {summary.cases} cases ({summary.size} px, seed {summary.seed}, "
        f"{summary.missing_auxiliary} without clinical image) to {summary.root}"
    )
    return 0


def run_check(args: argparse.Namespace) -> int:
    from mmfuse.data.derm7pt import check_release
    from mmfuse.data.validate import check_paired_csv

    if args.format == "derm7pt":
        problems = check_release(args.root, workers=args.workers, allow_outside_root=args.allow_outside_root)
    else:
        _config(args)
        problems = check_paired_csv(
            args.root, args.schema, workers=args.workers, allow_outside_root=args.allow_outside_root
        )
    for problem in problems:
        print(problem)
    if problems:
        print(f"{len(problems)} problem(s) in {args.root}", file=sys.stderr)
        return 1
    print(f"{args.root}: no problems found")
    return 0


def run_stats(args: argparse.Namespace) -> int:
    import warnings

    from mmfuse.data.build import load_table
    from mmfuse.data.validate import format_statistics, split_statistics

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        table = load_table(_config(args))
        stats = split_statistics(table)
        reports = metadata_reports(table, _config(args)) if args.metadata else None
    for warning in caught:
        print(f"note: {warning.message}", file=sys.stderr)
    if args.json:
        print(json.dumps(stats if reports is None else {**stats, "metadata": reports}, indent=2))
        return 0
    print(format_statistics(stats))
    for split, report in (reports or {}).items():
        print(f"{split}: {report['text']}")
    return 0


def metadata_reports(table, config: dict) -> dict:
    """Per split, the missing and unknown metadata values under the encoding fitted on ``train``."""
    from mmfuse.data.build import fit_metadata_encoding

    encoding, _ = fit_metadata_encoding({**config, "metadata": True}, "train")
    reports = {}
    for split in table.splits:
        _, _, report = encoding.encode([r.metadata for r in table.split_records(split)])
        reports[split] = {**report.to_dict(), "text": report.describe()}
    return reports


def run_prepare(args: argparse.Namespace) -> int:
    import time

    from mmfuse.data.build import load_table
    from mmfuse.data.cache import prepare_cache

    table = load_table(_config(args))
    records = [r for r in table.records if r is not None]
    start = time.perf_counter()
    path = prepare_cache(args.root, records, args.size, workers=args.workers)
    print(f"cached {len(records)} cases at {args.size} px in {time.perf_counter() - start:.1f} s: {path}")
    return 0


def run_probe(args: argparse.Namespace) -> int:
    from mmfuse.data.build import load_table
    from mmfuse.data.probe import learnability_probe

    table = load_table(_config(args))
    results = learnability_probe(
        table.split_records("train"), table.split_records("test"), table.tasks, pixels=args.pixels
    )
    print("test balanced accuracy (chance = 1 / number of classes)")
    print(f"{'inputs':<10} " + " ".join(f"{t.name:>5}" for t in table.tasks) + "   mean")
    for inputs, scores in results.items():
        mean = sum(scores.values()) / len(scores)
        print(f"{inputs:<10} " + " ".join(f"{scores[t.name]:5.2f}" for t in table.tasks) + f"  {mean:5.2f}")
    return 0
