"""``mmfuse reproduce tableN --data ROOT --seeds 0-9 --out DIR``: one of the paper's tables, over seeds."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mmfuse.cli.argtypes import add_threads_option
from mmfuse.errors import UsageError


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "reproduce",
        help="train every row of one of the paper's Tables 6-10 over seeds and write it beside the paper's",
    )
    parser.add_argument("table", choices=["table6", "table7", "table8", "table9", "table10"])
    parser.add_argument(
        "--data", metavar="ROOT", help="the Derm7pt release (with --quick: default a synthetic one)"
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="runs and the table are written here")
    parser.add_argument("--seeds", metavar="LIST", help="'0-9' (default) or '0,1,2'; --quick default: 0-1")
    parser.add_argument(
        "--config", metavar="YAML", help="run recipe (default: the paper's, as examples/configs/paper.yaml)"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="32 px images, 2 epochs, CPU, 2 seeds, a 48-case synthetic release unless --data: a pipeline check",
    )
    parser.add_argument("--dry-run", action="store_true", help="print one command per run (for a scheduler)")
    parser.add_argument("--only", metavar="ROWS", help="comma-separated configuration names: run only these")
    parser.add_argument(
        "--table-only", action="store_true", help="train nothing; write the table from finished runs"
    )
    add_threads_option(
        parser,
        default=None,
        help="CPU threads for torch in every run, or 'auto' (default: the recipe's train.threads)",
    )
    parser.set_defaults(func=run)


def _base_config(args: argparse.Namespace, data: str) -> dict:
    from mmfuse.reproduce import PAPER_RECIPE, _merge
    from mmfuse.training.config import load_config, resolve

    train = {} if args.threads is None else {"threads": args.threads}
    if args.config:
        return load_config(args.config, data={"root": data}, train=train)
    return resolve(_merge(PAPER_RECIPE, {"data": {"root": data}, "train": train}))


def run(args: argparse.Namespace) -> int:
    from mmfuse import reproduce
    from mmfuse.training.repeats import parse_seeds

    out = Path(args.out)
    seeds = parse_seeds(args.seeds or (reproduce.QUICK_SEEDS if args.quick else "0-9"))
    synthetic = out / "synthetic"
    data = args.data or (str(synthetic) if args.quick else None)
    if data is None:
        raise UsageError("--data ROOT is required (the Derm7pt release); --quick alone uses a synthetic one")
    if args.quick and Path(data) == synthetic:
        # Made once, here, before any run (and before a dry run prints the commands a scheduler may start
        # at once); a parallel process that loses the race to create it uses the winner's.
        from mmfuse.data.synth import synthesize

        if not synthetic.is_dir():
            print(
                f"synthetic release: {reproduce.QUICK_CASES} cases at {reproduce.QUICK_IMAGE_SIZE} px -> {data}",
                file=sys.stderr if args.dry_run else sys.stdout,
            )
        synthesize(
            synthetic, cases=reproduce.QUICK_CASES, size=reproduce.QUICK_IMAGE_SIZE, seed=0, exist_ok=True
        )
    only = [r.strip() for r in args.only.split(",")] if args.only else None
    runs = reproduce.plan(args.table, out, seeds, only)
    if args.dry_run:
        options = {"data": data, "out": str(out), "config": args.config, "threads": args.threads}
        for command in reproduce.dry_run_commands(args.table, runs, options, args.quick):
            print(command)
        return 0
    base = _base_config(args, data)
    if not args.table_only:
        reproduce.run_all(runs, base, quick=args.quick)
    pending = [r for r in reproduce.plan(args.table, out, seeds) if not r.done]
    if pending:
        print(f"{len(pending)} runs of {args.table} are not finished; the table waits for them")
        return 0
    data_table = reproduce.write_table(args.table, out, seeds, base, quick=args.quick)
    print(reproduce.markdown(data_table))
    print(
        f"written: {out / (args.table + '.md')}, {out / (args.table + '.json')}, {out / (args.table + '.png')}"
    )
    return 0
