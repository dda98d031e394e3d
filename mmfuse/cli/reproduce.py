"""``mmfuse reproduce tableN --data ROOT --seeds 0-9 --out DIR``: one of the paper's tables, over seeds.

``mmfuse reproduce milk10k --data ROOT --out DIR``: AMMFM and its peers cross-validated on MILK10k.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mmfuse.cli.argtypes import add_threads_option
from mmfuse.cli.launching import add_launcher_options, launcher_from_args
from mmfuse.errors import UsageError


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "reproduce",
        help="train every row of one of the paper's Tables 6-10 over seeds and write it beside the paper's; "
        "or (milk10k) AMMFM and its peers over the same MILK10k folds",
    )
    parser.add_argument("table", choices=["table6", "table7", "table8", "table9", "table10", "milk10k"])
    parser.add_argument(
        "--folds", type=int, metavar="K", help="milk10k: cross-validation folds (default 5; --quick: 3)"
    )
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
    add_launcher_options(parser)
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


def run_milk10k(args: argparse.Namespace) -> int:
    from mmfuse import reproduce_milk10k as milk
    from mmfuse.reproduce import _merge
    from mmfuse.training.config import load_config, resolve

    out = Path(args.out)
    folds = args.folds or (milk.QUICK_FOLDS if args.quick else milk.FOLDS)
    synthetic = out / "synthetic"
    data = args.data or (str(synthetic) if args.quick else None)
    if data is None:
        raise UsageError("--data ROOT is required (the MILK10k release); --quick alone uses a synthetic one")
    if args.seeds or args.dry_run:
        raise UsageError(
            "milk10k cross-validates with one seed; --seeds and --dry-run apply to the paper's tables"
        )
    if args.quick and Path(data) == synthetic and not synthetic.is_dir():
        from mmfuse.data.synth.milk10k import synthesize_milk10k

        print(
            f"synthetic MILK10k release: {milk.QUICK_LESIONS} lesions at {milk.QUICK_IMAGE_SIZE} px -> {data}"
        )
        synthesize_milk10k(synthetic, cases=milk.QUICK_LESIONS, size=milk.QUICK_IMAGE_SIZE, seed=0)
    if args.config:
        base = load_config(args.config, data={"root": data, "format": "milk10k"})
    else:
        base = resolve(_merge(milk.RECIPE, {"data": {"root": data}}))
    only = [r.strip() for r in args.only.split(",")] if args.only else None
    if not args.table_only:
        milk.run_rows(base, out, folds, quick=args.quick, only=only)
    pending = [p for _, p in milk.rows(only) if not (out / "runs" / p / "cv.json").is_file()]
    if pending:
        print(
            f"{len(pending)} rows of milk10k are not finished ({', '.join(pending)}); the table waits for them"
        )
        return 0
    table = milk.write_table(out, folds, data, quick=args.quick, only=only)
    print(milk.markdown(table), end="")
    print(f"written: {out / 'milk10k.md'}, {out / 'milk10k.json'}")
    return 0


def run(args: argparse.Namespace) -> int:
    from mmfuse import reproduce

    if args.table == "milk10k":
        return run_milk10k(args)
    from mmfuse.training.repeats import parse_seeds

    out = Path(args.out)
    seeds = parse_seeds(args.seeds or (reproduce.QUICK_SEEDS if args.quick else "0-9"))
    synthetic = out / "synthetic"
    data = args.data or (str(synthetic) if args.quick else None)
    if data is None:
        raise UsageError("--data ROOT is required (the Derm7pt release); --quick alone uses a synthetic one")
    # Checked here, before anything is planned: --dry-run hands its commands to a scheduler, whose jobs
    # would all fail hours later on a mistyped path.
    if args.data is not None and not Path(args.data).is_dir():
        raise UsageError(f"--data {args.data}: no such dataset folder")
    if args.config is not None and not Path(args.config).is_file():
        raise UsageError(f"--config {args.config}: no such file")
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
    launcher = launcher_from_args(args)
    outcome = None
    if not args.table_only:
        outcome = reproduce.run_all(runs, base, quick=args.quick, launcher=launcher, folder=out)
    pending = [r for r in reproduce.plan(args.table, out, seeds) if not r.done]
    if pending:
        print(f"{len(pending)} runs of {args.table} are not finished; the table waits for them")
        if outcome is not None:
            outcome.raise_failures(f"runs of {args.table}")
        return 0
    data_table = reproduce.write_table(args.table, out, seeds, base, quick=args.quick)
    print(reproduce.markdown(data_table))
    print(
        f"written: {out / (args.table + '.md')}, {out / (args.table + '.json')}, {out / (args.table + '.png')}"
    )
    return 0
