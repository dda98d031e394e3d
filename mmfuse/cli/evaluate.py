"""``mmfuse evaluate RUN_OR_MODEL --data ROOT --split test [--tta] [--primary-only]``: the paper's metrics."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "evaluate", help="per-head and final metrics of a trained model on a dataset split"
    )
    parser.add_argument(
        "model", metavar="RUN_OR_MODEL", help="a run directory, a model directory or a Hub name"
    )
    parser.add_argument("--data", metavar="ROOT", help="dataset folder (default: the run's data.root)")
    parser.add_argument(
        "--format", help="dataset format, 'derm7pt' or 'paired_csv' (default: the run's, else derm7pt)"
    )
    parser.add_argument("--schema", help="YAML task schema for --format paired_csv")
    parser.add_argument("--split", default="test", help="split to evaluate (default: test)")
    parser.add_argument("--tta", action="store_true", help="average over the flip and rotation views")
    parser.add_argument(
        "--primary-only",
        action="store_true",
        help="ignore the auxiliary images: what the model does without them",
    )
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="auto", help="'auto', 'cpu' or 'cuda[:i]'")
    parser.add_argument(
        "--out", metavar="DIR", help="also write metrics.json, predictions_<split>.csv and plots here"
    )
    parser.add_argument(
        "--bootstrap",
        type=int,
        default=1000,
        metavar="B",
        help="resamples of the cases for the 95%% confidence intervals (default: 1000; 0: no intervals)",
    )
    parser.add_argument("--bootstrap-seed", type=int, default=0, help="seed of the resamples (default: 0)")
    parser.add_argument("--level", type=float, default=0.95, help="coverage of the intervals (default: 0.95)")
    parser.add_argument("--json", action="store_true", help="print the metrics as JSON")
    parser.set_defaults(func=run)


def _data_config(args: argparse.Namespace, run_dir: Path | None) -> dict:
    config: dict = {}
    if run_dir is not None and (run_dir / "config.yaml").is_file():
        from mmfuse.training.config import dataset_options, load_config

        config = dataset_options(load_config(run_dir / "config.yaml"))
    if args.data:
        config = {k: v for k, v in config.items() if k not in ("root", "format", "schema")}
        config["root"] = args.data
    if args.format:
        config["format"] = args.format
    if args.schema:
        config["schema"] = args.schema
    if "root" not in config:
        raise ValueError(
            "--data ROOT is required (the dataset folder) unless RUN_OR_MODEL is a run directory"
        )
    config.setdefault("format", "derm7pt")
    return config


def run(args: argparse.Namespace) -> int:
    from mmfuse.evaluation.bootstrap import BootstrapOptions
    from mmfuse.evaluation.evaluate import evaluation_dataset, predict_split, write_split_report
    from mmfuse.evaluation.report import format_class_table, format_table, split_metrics
    from mmfuse.evaluation.writers import METRICS_FILE, json_safe, write_json
    from mmfuse.training.distributed import DistContext
    from mmfuse.training.rundir import load_run_or_model, run_model_dir
    from mmfuse.training.trainer import select_device

    model_dir = run_model_dir(args.model)
    run_dir = model_dir.parent if model_dir else None
    model = load_run_or_model(args.model)
    device = select_device(args.device, DistContext())
    model.to(device)
    dataset = evaluation_dataset(model, _data_config(args, run_dir), args.split)
    predictions = predict_split(
        model,
        dataset,
        device=device,
        tta=args.tta,
        primary_only=args.primary_only,
        batch_size=args.batch_size,
    )
    weights = model.head_weights_dict
    bootstrap = BootstrapOptions(args.bootstrap, args.bootstrap_seed, args.level) if args.bootstrap else None
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        report = write_split_report(out, args.split, predictions, model.tasks, weights, bootstrap=bootstrap)
        metrics = {args.split: report, "head_weights": weights}
        write_json(out / METRICS_FILE, metrics)
    else:
        report = split_metrics(predictions, model.tasks, weights, bootstrap=bootstrap)
        metrics = {args.split: report, "head_weights": weights}
    if args.json:
        print(json.dumps(json_safe(metrics), indent=2))
        return 0
    mode = "primary only" if args.primary_only else "both images"
    print(f"{args.split} ({len(predictions.case_ids)} cases, {mode}{', TTA' if args.tta else ''}):")
    print(format_table(metrics[args.split], model.tasks))
    print()
    print(format_class_table(metrics[args.split]["final"], model.tasks))
    if args.out:
        print(f"report written to {args.out}")
    return 0
