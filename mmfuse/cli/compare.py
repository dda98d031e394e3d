"""``mmfuse compare RUN_A RUN_B [--split test]``: is A better than B on the same cases, or is it noise?"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mmfuse.cli.argtypes import add_bootstrap_options, add_threads_option


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "compare",
        help="paired comparison of two runs: avg AUC/ACC difference with bootstrap CI and p, DeLong per class",
    )
    parser.add_argument("run_a", metavar="RUN_A", help="a run directory or a --seeds folder")
    parser.add_argument("run_b", metavar="RUN_B", help="a run directory or a --seeds folder")
    parser.add_argument("--split", default="test", help="split whose predictions to compare (default: test)")
    add_bootstrap_options(parser, resamples_help="paired resamples", low=1)
    parser.add_argument(
        "--adjust",
        choices=["none", "holm"],
        default="none",
        help="multiple-comparison adjustment of the per-class p-values (default: none, unadjusted)",
    )
    parser.add_argument("--out", metavar="FILE", help="also write the comparison as JSON to FILE")
    parser.add_argument("--json", action="store_true", help="print the comparison as JSON")
    add_threads_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mmfuse.evaluation.bootstrap import BootstrapOptions
    from mmfuse.evaluation.compare import (
        adjust_delong,
        compare_runs,
        format_comparison,
        load_run_predictions,
    )
    from mmfuse.evaluation.writers import json_safe, write_json
    from mmfuse.fileio import check_output_file
    from mmfuse.threads import set_threads

    set_threads(args.threads)
    if args.out:
        check_output_file(args.out)  # before the predictions are read and resampled
    options = BootstrapOptions(args.bootstrap, args.bootstrap_seed, args.level)
    result = compare_runs(
        load_run_predictions(args.run_a, args.split),
        load_run_predictions(args.run_b, args.split),
        bootstrap=options,
    )
    result = {"split": args.split, **adjust_delong(result, args.adjust)}
    if args.out:
        write_json(Path(args.out), result)
    if args.json:
        print(json.dumps(json_safe(result), indent=2))
    else:
        print(f"split {args.split}")
        print(format_comparison(result))
    return 0
