"""``mmfuse train CONFIG --out RUN [--resume] [--seeds 0,1,…]``: train, evaluate, write the run directory.

Works alone or under ``torchrun --nproc_per_node=K -m mmfuse train CONFIG --out RUN``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mmfuse.cli.argtypes import add_threads_option
from mmfuse.errors import ConfigError, UsageError


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a model from a YAML config; writes checkpoints, the model and the report to --out",
    )
    parser.add_argument(
        "config", nargs="?", help="the run config (YAML); with --resume, defaults to RUN/config.yaml"
    )
    parser.add_argument("--out", required=True, metavar="RUN", help="the run directory to create (or resume)")
    parser.add_argument("--resume", action="store_true", help="continue from the last checkpoint in RUN")
    parser.add_argument(
        "--allow-change",
        action="append",
        default=[],
        metavar="KEY",
        help="with --resume: let KEY differ from the run's config (train.lr, train.grad_clip, train.amp or "
        "train.epochs; repeat for several), e.g. to recover from a NaN loss",
    )
    parser.add_argument(
        "--seeds",
        metavar="LIST",
        help="train once per seed ('0,1,2' or '0-9') into RUN/seed_<k> and summarise",
    )
    parser.add_argument("--data", metavar="ROOT", help="dataset folder (overrides data.root)")
    parser.add_argument(
        "--preset",
        metavar="NAME",
        help="override model.preset: any of `mmfuse.list_presets()`, the peers included (same recipe)",
    )
    parser.add_argument("--epochs", type=int, help="override train.epochs")
    parser.add_argument("--device", help="override train.device ('auto', 'cpu', 'cuda', 'cuda:1')")
    add_threads_option(
        parser,
        default=None,
        help="override train.threads: CPU threads for torch, or 'auto' (free cores less DataLoader workers)",
    )
    parser.add_argument(
        "--no-eval", action="store_true", help="skip the final evaluation (TTA, weight search, report)"
    )
    parser.set_defaults(func=run)


def _overrides(args: argparse.Namespace) -> dict:
    overrides: dict = {}
    if args.data:
        overrides["data"] = {"root": args.data}
    if args.preset:
        overrides["model"] = {"preset": args.preset}
    given = (("epochs", args.epochs), ("device", args.device), ("threads", args.threads))
    train = {k: v for k, v in given if v is not None}
    if train:
        overrides["train"] = train
    return overrides


def run(args: argparse.Namespace) -> int:
    from mmfuse.evaluation.report import format_table
    from mmfuse.threads import choose_threads
    from mmfuse.training import load_config, parse_seeds, run_seeds, train
    from mmfuse.training.rundir import CONFIG_FILE

    out = Path(args.out)
    config_path = args.config
    if config_path is None:
        if not args.resume:
            raise UsageError("give a CONFIG file (or --resume to continue the run in --out)")
        config_path = out / CONFIG_FILE
    config = load_config(config_path, **_overrides(args))
    if args.allow_change and not args.resume:
        raise UsageError("--allow-change only applies with --resume")
    try:
        if args.seeds:
            summary = run_seeds(
                config, out, parse_seeds(args.seeds), resume=args.resume, allow_changes=args.allow_change
            )
            if summary:
                print(f"summary over seeds {summary['seeds']}: {out / 'summary.md'}")
            return 0
        choice = choose_threads(config["train"]["threads"], num_workers=int(config["data"]["num_workers"]))
        print(f"torch threads: {choice.threads} ({choice.reason})", flush=True)
        result = train(
            config, out, resume=args.resume, evaluate=not args.no_eval, allow_changes=args.allow_change
        )
    except (ConfigError, UsageError) as exc:  # raised while building from the config: name its file
        if str(config_path) in str(exc):
            raise
        raise ConfigError(f"{config_path}: {exc}") from None
    if result.model is None:
        return 0  # a non-zero torchrun rank
    if result.metrics:
        for split, heads in result.metrics.items():
            if split != "head_weights":
                print(f"{split}:\n{format_table(heads, result.model.tasks)}\n")
        weights = ", ".join(f"{h} {w:.2f}" for h, w in result.metrics["head_weights"].items())
        print(f"head weights (searched on {config['data']['val_split']}): {weights}")
    from mmfuse.evaluation.html_report import REPORT_FILE

    print(f"run directory: {out} (model in {out / 'model'})")
    if (out / REPORT_FILE).is_file():
        print(f"report: {out / REPORT_FILE} (the numbers in {out / 'metrics.json'})")
    return 0
