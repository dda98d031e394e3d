"""``mmfuse evaluate RUN_OR_MODEL --data ROOT --split test [--tta|--no-tta] [--primary-only]``: the paper's metrics."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from mmfuse.cli.argtypes import add_bootstrap_options, add_threads_option, positive_int, seed_int
from mmfuse.cli.dataargs import add_data_options, data_section
from mmfuse.errors import UsageError

if TYPE_CHECKING:
    from mmfuse.runs import RunDir


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "evaluate", help="per-head and final metrics of a trained model on a dataset split"
    )
    parser.add_argument(
        "model", metavar="RUN_OR_MODEL", help="a run directory, a model directory or a Hub name"
    )
    add_data_options(
        parser, "dataset folder (default: the run's data.root; the run's format and schema apply)"
    )
    parser.add_argument("--split", default="test", help="split to evaluate (default: test)")
    parser.add_argument(
        "--tta",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="average over the flip and rotation views (default: the run's evaluation.tta, as training "
        "evaluated; off for a model that is not a run)",
    )
    parser.add_argument(
        "--primary-only",
        action="store_true",
        help="ignore the auxiliary images: what the model does without them",
    )
    parser.add_argument(
        "--no-temperature",
        action="store_true",
        help="ignore the model's fitted temperatures (the raw softmax of each head)",
    )
    parser.add_argument("--batch-size", type=positive_int, default=64)
    parser.add_argument("--device", default="auto", help="'auto', 'cpu' or 'cuda[:i]'")
    add_threads_option(parser)
    parser.add_argument(
        "--out", metavar="DIR", help="also write metrics.json, predictions_<split>.csv and plots here"
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="let --out replace an existing metrics.json (by default a training run's results are never replaced)",
    )
    add_bootstrap_options(
        parser, resamples_help="resamples of the cases for the confidence intervals (0: no intervals)", low=0
    )
    parser.add_argument(
        "--robustness",
        action="store_true",
        help="also re-evaluate with each modality degraded (7 corruptions x 5 severities) and absent; writes "
        "robustness.json and robustness.png to --out, else to the run directory (only on the run's own data)",
    )
    parser.add_argument(
        "--corruptions",
        metavar="LIST",
        help="comma-separated subset of the corruptions for --robustness (default: all seven)",
    )
    parser.add_argument(
        "--robustness-seed", type=seed_int, default=0, help="seed of the random parts of the degradations"
    )
    parser.add_argument("--json", action="store_true", help="print the metrics as JSON")
    parser.set_defaults(func=run)


def _refuse_other_data_in_run(args: argparse.Namespace, data: dict, run_dir: Path | None) -> None:
    """Without --out, robustness files go into the run folder: only for the run's own data (before inference)."""
    from mmfuse.cli.dataargs import run_data_section

    if not args.robustness or args.out or run_dir is None:
        return
    own = run_data_section(args.model)

    def where(config: dict) -> dict:
        return {**config, "root": str(Path(str(config.get("root", ""))).resolve())}

    if own and where(own) != where(data):
        raise UsageError(
            f"--robustness on {data.get('root')} (not the run's own data, {own.get('root')}) would put results "
            f"of other data into {run_dir}; pass --out DIR to write them to a folder of their own"
        )


def resolve_tta(flag: bool | None, run: RunDir | None) -> tuple[bool | list[str], str]:
    """The TTA setting to evaluate with and where it came from: ``--tta``/``--no-tta``, else the run's own."""
    if flag is not None:
        return flag, "--tta" if flag else "--no-tta"
    from mmfuse.training.config import load_config

    if run is not None and run.config_file.is_file():
        return load_config(run.config_file)["evaluation"]["tta"], "the run's evaluation.tta"
    return False, "the default for a model that is not a run"


def describe_tta(tta: bool | list[str], source: str) -> str:
    """``TTA on (6 views; the run's evaluation.tta)``: what the printed numbers were computed with."""
    from mmfuse.evaluation.inference import resolve_views

    views = resolve_views(tta)
    state = f"on ({len(views)} views" if len(views) > 1 else "off (1 view"
    return f"TTA {state}; {source})"


def _print_report(args: argparse.Namespace, model, result, tta: bool | list[str], tta_source: str) -> None:
    from mmfuse.evaluation.calibration import format_ece
    from mmfuse.evaluation.report import format_class_table, format_table

    metrics = result.metrics
    mode = "primary only" if args.primary_only else "both images"
    print(f"{args.split} ({result.cases} cases, {mode}, {describe_tta(tta, tta_source)}):")
    print(format_table(metrics[args.split], model.tasks))
    print()
    print(format_class_table(metrics[args.split]["final"], model.tasks))
    print()
    print(format_ece(result.calibration, model.tasks, scaled=metrics["calibration"]["temperature_scaled"]))
    if "robustness" in metrics:
        from mmfuse.evaluation.robustness import format_robustness

        print()
        print(format_robustness(metrics["robustness"]))
    if args.out:
        print(f"report written to {args.out}")


def run(args: argparse.Namespace) -> int:
    from mmfuse.evaluation.bootstrap import BootstrapOptions
    from mmfuse.evaluation.model_evaluation import check_report_folder, evaluate_model, write_robustness
    from mmfuse.evaluation.writers import json_safe
    from mmfuse.metrics_layout import DATA_KEY
    from mmfuse.runs import RunDir, load_run_or_model
    from mmfuse.runtime.device import select_device
    from mmfuse.threads import set_threads

    set_threads(args.threads)
    out = Path(args.out) if args.out else None
    if out is not None:
        check_report_folder(out, overwrite=args.overwrite)  # before minutes of inference
    run_dir = RunDir.named_by(args.model)
    tta, tta_source = resolve_tta(args.tta, run_dir)
    model = load_run_or_model(args.model)
    device = select_device(args.device)
    model.to(device)
    data = data_section(args, args.model)
    if data is None:
        raise UsageError(
            "--data ROOT is required (the dataset folder) unless RUN_OR_MODEL is a run directory"
        )
    run_path = run_dir.path if run_dir else None
    _refuse_other_data_in_run(args, data, run_path)
    bootstrap = BootstrapOptions(args.bootstrap, args.bootstrap_seed, args.level) if args.bootstrap else None
    result = evaluate_model(
        model,
        data,
        args.split,
        out=out,
        device=device,
        tta=tta,
        tta_source=tta_source,
        primary_only=args.primary_only,
        temperatures=not args.no_temperature,
        batch_size=args.batch_size,
        bootstrap=bootstrap,
    )
    if args.robustness:
        corruptions = (
            [c.strip() for c in args.corruptions.split(",") if c.strip()] if args.corruptions else None
        )
        result.metrics["robustness"] = write_robustness(
            model,
            data,
            args.split,
            result.metrics[DATA_KEY][args.split],
            out=out,
            run_dir=run_path,
            device=device,
            # the curves multiply the cost by 51: they use TTA only when --tta asks for it
            tta=args.tta is True,
            primary_only=args.primary_only,
            batch_size=args.batch_size,
            seed=args.robustness_seed,
            corruptions=corruptions,
        )
    if args.json:
        print(json.dumps(json_safe(result.metrics), indent=2))
    else:
        _print_report(args, model, result, tta, tta_source)
    return 0
