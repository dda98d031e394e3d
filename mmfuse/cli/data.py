"""``mmfuse data``: synthesise, check, count and prepare paired-modality datasets."""

from __future__ import annotations

import argparse
import json
import sys

from mmfuse.cli.argtypes import (
    add_format_options,
    dataset_format,
    image_size,
    int_in_range,
    seed_int,
    worker_count,
)
from mmfuse.errors import UsageError
from mmfuse.limits import MAX_PROBE_PIXELS, MAX_SYNTH_CASES, MAX_SYNTH_SIZE

SYNTH_FORMATS = ("derm7pt", "milk10k")
FORMAT_HELP = "dataset format: derm7pt, paired_csv or a plugin's (`mmfuse data formats` lists them)"


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("data", help="synthesise, check, count and prepare datasets")
    commands = parser.add_subparsers(dest="data_command", required=True, metavar="ACTION")

    synth = commands.add_parser("synth", help="write a synthetic release (Derm7pt or MILK10k layout)")
    synth.add_argument("out", help="folder to create")
    synth.add_argument(
        "--format",
        choices=SYNTH_FORMATS,
        default="derm7pt",
        help="the release layout to write (default: derm7pt)",
    )
    synth.add_argument(
        "--tables",
        metavar="DIR",
        help="milk10k: take the real rows of a class-stratified subset of lesions from the release's CSV "
        "files in DIR (default: invent rows with the real tables' marginals)",
    )
    synth.add_argument(
        "--cases",
        type=int_in_range(1, MAX_SYNTH_CASES),
        default=200,
        help="cases (milk10k: training lesions)",
    )
    synth.add_argument(
        "--size", type=int_in_range(8, MAX_SYNTH_SIZE), default=256, help="image side in pixels"
    )
    synth.add_argument("--seed", type=seed_int, default=0)
    synth.add_argument(
        "--workers", type=worker_count, default=None, help="drawing threads (default: all cores)"
    )
    synth.set_defaults(func=run_synth)

    probe = commands.add_parser("probe", help="logistic-regression learnability probe (needs scikit-learn)")
    probe.add_argument("format", type=dataset_format, metavar="FORMAT", help=FORMAT_HELP)
    probe.add_argument("root", help="dataset folder")
    add_format_options(probe)
    probe.add_argument(
        "--pixels", type=int_in_range(1, MAX_PROBE_PIXELS), default=24, help="side of the downsampled images"
    )
    probe.set_defaults(func=run_probe)

    for name, text in (
        ("check", "report every problem of a dataset (tables, splits, every image); exit 1 if any"),
        ("stats", "class counts per task and split, from the tables alone"),
        ("prepare", "decode and resize every image once into ROOT/.mmfuse-cache/SIZE"),
    ):
        sub = commands.add_parser(name, help=text)
        sub.add_argument("format", type=dataset_format, metavar="FORMAT", help=FORMAT_HELP)
        sub.add_argument("root", help="dataset folder")
        add_format_options(sub)
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
            sub.add_argument("--size", type=image_size, required=True, help="the model's input size")
        if name in ("check", "prepare"):
            sub.add_argument("--workers", type=worker_count, default=None)
        sub.set_defaults(func={"check": run_check, "stats": run_stats, "prepare": run_prepare}[name])

    formats = commands.add_parser("formats", help="list the dataset formats (built-in and from plugins)")
    formats.add_argument("--json", action="store_true", help="print JSON instead of text")
    formats.set_defaults(func=run_formats)


def _config(args: argparse.Namespace) -> dict:
    """The data config of ``FORMAT ROOT --schema ... --option KEY=VALUE``; missing or foreign options fail here."""
    from mmfuse.data.formats import get_format

    fmt = get_format(args.format)
    config = {
        "format": args.format,
        "root": args.root,
        "schema": args.schema,
        "allow_outside_root": bool(getattr(args, "allow_outside_root", False)),
    }
    for key, value in args.format_options:
        if key not in fmt.options:
            takes = ", ".join(fmt.options) or "none"
            raise UsageError(f"data format {args.format!r} has no option {key!r} (its options: {takes})")
        config[key] = value
    for key, option in fmt.options.items():
        if option.required and not config.get(key):
            flag = f"--{key} {option.metavar or key.upper()}" if key == "schema" else f"--option {key}=..."
            raise UsageError(f"{args.format} needs {flag}")
    return config


def run_formats(args: argparse.Namespace) -> int:
    from mmfuse.data.formats import get_format
    from mmfuse.registry import DATASET_FORMATS, list_dataset_formats

    described = []
    for name in list_dataset_formats():
        fmt = get_format(name)
        described.append(
            {
                "name": name,
                "plugin": DATASET_FORMATS.entry(name).provider,
                "description": fmt.description,
                "options": {
                    key: {"help": o.help, "required": o.required, "path": o.path}
                    for key, o in fmt.options.items()
                },
            }
        )
    if args.json:
        print(json.dumps(described, indent=2))
        return 0
    for item in described:
        print(f"{item['name']:<14} {item['description']} [{item['plugin']}]")
        for key, option in item["options"].items():
            print(f"{'':<14}   {key}: {option['help']}{' (required)' if option['required'] else ''}")
    return 0


def run_synth(args: argparse.Namespace) -> int:
    from mmfuse.data.synth import synthesize

    if args.format == "milk10k":
        from mmfuse.data.synth.milk10k import synthesize_milk10k

        made = synthesize_milk10k(
            args.out,
            cases=args.cases,
            size=args.size,
            seed=args.seed,
            tables=args.tables,
            workers=args.workers,
        )
        counts = ", ".join(f"{c} {n}" for c, n in made.class_counts.items())
        print(
            f"wrote {made.lesions} training lesions ({counts}) and {made.benchmark_lesions} benchmark lesions "
            f"({made.size} px, seed {made.seed}, rows from the {made.source}) to {made.root}"
        )
        return 0
    if args.tables:
        raise UsageError("--tables applies to --format milk10k only")
    summary = synthesize(args.out, cases=args.cases, size=args.size, seed=args.seed, workers=args.workers)
    print(
        f"wrote {summary.cases} cases ({summary.size} px, seed {summary.seed}, "
        f"{summary.missing_auxiliary} without clinical image) to {summary.root}"
    )
    return 0


def run_check(args: argparse.Namespace) -> int:
    from mmfuse.data.build import check_data_options
    from mmfuse.data.formats import data_options, get_format

    config = _config(args)
    check_data_options(config)
    fmt = get_format(args.format)
    problems = fmt.check(data_options(config, fmt), workers=args.workers)
    for problem in problems:
        print(problem)
    if problems:
        print(f"{len(problems)} problem(s) in {args.root}", file=sys.stderr)
        return 1
    print(f"{args.root}: no problems found")
    return 0


def run_stats(args: argparse.Namespace) -> int:
    from mmfuse.data.build import load_table
    from mmfuse.data.validate import format_statistics, split_statistics

    table = load_table(_config(args))  # its warnings print as one line (mmfuse.cli.main)
    if not all(r.labels for r in table.records if r is not None):
        return _print_unlabelled(table, args.json)
    stats = split_statistics(table)
    reports = metadata_reports(table, _config(args)) if args.metadata else None
    if args.json:
        print(json.dumps(stats if reports is None else {**stats, "metadata": reports}, indent=2))
        return 0
    print(format_statistics(stats))
    for split, report in (reports or {}).items():
        print(f"{split}: {report['text']}")
    return 0


def _print_unlabelled(table, as_json: bool) -> int:
    """Case counts of a table without labels (a challenge's benchmark part)."""
    counts = {split: len(table.split_records(split)) for split in table.splits}
    if as_json:
        print(json.dumps({"cases": counts, "labelled": False}, indent=2))
    else:
        print("\n".join(f"{split}: {n} cases, unlabelled" for split, n in counts.items()))
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
    widths = [max(5, len(t.name)) for t in table.tasks]
    print(
        f"{'inputs':<10} "
        + " ".join(f"{t.name:>{w}}" for t, w in zip(table.tasks, widths, strict=True))
        + "   mean"
    )
    for inputs, scores in results.items():
        mean = sum(scores.values()) / len(scores)
        cells = " ".join(f"{scores[t.name]:{w}.2f}" for t, w in zip(table.tasks, widths, strict=True))
        print(f"{inputs:<10} {cells}  {mean:5.2f}")
    return 0
