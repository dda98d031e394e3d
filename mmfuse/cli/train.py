"""``mmfuse train CONFIG --out RUN [--resume] [--seeds 0,1,…]``: train, evaluate, write the run directory.

Works alone or under ``torchrun --nproc_per_node=K -m mmfuse train CONFIG --out RUN``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mmfuse.cli.argtypes import add_threads_option, positive_int
from mmfuse.cli.launching import add_launcher_options, launcher_from_args
from mmfuse.errors import RunConfigError, UsageError


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
    parser.add_argument(
        "--folds",
        type=int,
        metavar="K",
        help="grouped, stratified K-fold cross-validation: one run per fold in RUN/fold_<k>, summary in RUN/cv.json",
    )
    parser.add_argument(
        "--group-by",
        metavar="FIELD",
        help="with --folds: the field whose cases stay in one fold (default: a schema's group_by, else case_id)",
    )
    parser.add_argument("--data", metavar="ROOT", help="dataset folder (overrides data.root)")
    parser.add_argument(
        "--preset",
        metavar="NAME",
        help="override model.preset: any of `mmfuse.list_presets()`, the peers included (same recipe)",
    )
    parser.add_argument("--epochs", type=positive_int, help="override train.epochs")
    parser.add_argument("--device", help="override train.device ('auto', 'cpu', 'cuda', 'cuda:1')")
    add_threads_option(
        parser,
        default=None,
        help="override train.threads: CPU threads for torch, or 'auto' (free cores less DataLoader workers)",
    )
    parser.add_argument(
        "--no-eval", action="store_true", help="skip the final evaluation (TTA, weight search, report)"
    )
    parser.add_argument(
        "--track",
        action="append",
        default=[],
        metavar="NAME",
        help="also track the run with NAME (mlflow, wandb, or a plugin's; tensorboard is on by default); "
        "repeat or comma-separate for several",
    )
    parser.add_argument(
        "--no-track", action="store_true", help="no experiment tracker (log.csv is written regardless)"
    )
    add_launcher_options(parser)
    parser.set_defaults(func=run)


def _track(args: argparse.Namespace, config: dict) -> None:
    """``train.track`` as --track (adds trackers) and --no-track (none) change it."""
    from mmfuse.tracking import check_track

    added = [name.strip() for value in args.track for name in value.split(",") if name.strip()]
    if args.no_track and added:
        raise UsageError("--no-track and --track exclude each other")
    if args.no_track:
        config["train"]["track"] = []
    elif added:
        try:
            config["train"]["track"] = check_track([*config["train"]["track"], *added])
        except RunConfigError as exc:
            raise UsageError(f"--track: {exc}".replace("train.track: ", "")) from None


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


def _run_folds(config: dict, out: Path, args: argparse.Namespace, launcher) -> int:
    import time

    from mmfuse.cv_layout import CV_MD
    from mmfuse.pipeline import run_folds

    start = time.perf_counter()
    summary = run_folds(
        config,
        out,
        args.folds,
        group_by=args.group_by,
        seed=int(config["data"].get("split_seed", 0)),
        resume=args.resume,
        allow_changes=args.allow_change,
        launcher=launcher,
    )
    if summary:
        print((out / CV_MD).read_text(), end="")
        print(f"{args.folds} folds in {time.perf_counter() - start:.0f} s; summary in {out / 'cv.json'}")
    return 0


def run(args: argparse.Namespace) -> int:
    from mmfuse.evaluation.report import format_table
    from mmfuse.metrics_layout import metric_splits
    from mmfuse.pipeline import run_seeds, train
    from mmfuse.runs import CONFIG_FILE
    from mmfuse.threads import choose_threads
    from mmfuse.training import load_config, parse_seeds

    out = Path(args.out)
    config_path = args.config
    if config_path is None:
        if not args.resume:
            raise UsageError("give a CONFIG file (or --resume to continue the run in --out)")
        config_path = out / CONFIG_FILE
    config = load_config(config_path, **_overrides(args))
    _track(args, config)
    if args.allow_change and not args.resume:
        raise UsageError("--allow-change only applies with --resume")
    if args.folds is not None and args.seeds:
        raise UsageError("--folds and --seeds are separate studies; give one of them")
    if args.folds is not None and args.no_eval:
        raise UsageError("--folds summarises every fold's evaluation; leave out --no-eval")
    many = bool(args.seeds) or args.folds is not None
    if not many and (args.launcher != "inline" or args.jobs != 1 or args.launcher_option):
        raise UsageError("--launcher, --jobs and --launcher-option apply to --seeds and --folds (many runs)")
    launcher = launcher_from_args(args) if many else None
    try:
        if args.folds is not None:
            return _run_folds(config, out, args, launcher)
        if args.seeds:
            summary = run_seeds(
                config,
                out,
                parse_seeds(args.seeds),
                resume=args.resume,
                allow_changes=args.allow_change,
                launcher=launcher,
            )
            if summary:
                print(f"summary over seeds {summary['seeds']}: {out / 'summary.md'}")
            return 0
        # Decided once, here: the trainer applies this choice rather than reading the load again.
        choice = choose_threads(config["train"]["threads"], num_workers=int(config["data"]["num_workers"]))
        print(f"torch threads: {choice.threads} ({choice.reason})", flush=True)
        result = train(
            config,
            out,
            resume=args.resume,
            evaluate=not args.no_eval,
            allow_changes=args.allow_change,
            threads=choice,
        )
    except (RunConfigError, UsageError) as exc:  # raised while building from the config: name its file
        if str(config_path) in str(exc):
            raise
        raise RunConfigError(f"{config_path}: {exc}") from None
    if result.model is None:
        return 0  # a non-zero torchrun rank
    if result.metrics:
        for split, heads in metric_splits(result.metrics).items():
            print(f"{split}:\n{format_table(heads, result.model.tasks)}\n")
        weights = ", ".join(f"{h} {w:.2f}" for h, w in result.metrics["head_weights"].items())
        print(f"head weights (searched on {config['data']['val_split']}): {weights}")
    from mmfuse.evaluation.html_report import REPORT_FILE

    print(f"run directory: {out} (model in {out / 'model'})")
    if (out / REPORT_FILE).is_file():
        print(f"report: {out / REPORT_FILE} (the numbers in {out / 'metrics.json'})")
    return 0
