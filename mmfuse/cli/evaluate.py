"""``mmfuse evaluate RUN_OR_MODEL --data ROOT --split test [--tta|--no-tta] [--primary-only]``: the paper's metrics."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mmfuse.cli.argtypes import add_bootstrap_options, add_threads_option, positive_int, seed_int
from mmfuse.cli.dataargs import add_data_options, data_section
from mmfuse.errors import UsageError


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


def _robustness(
    args: argparse.Namespace, model, device, data: dict, record: dict, run_dir: Path | None, *, tta: bool
) -> dict:
    """The robustness curves, written to --out or (on the run's own data) the run directory."""
    from mmfuse.evaluation.robustness import (
        ROBUSTNESS_FIGURE,
        ROBUSTNESS_FILE,
        plot_robustness,
        robustness_curves,
    )
    from mmfuse.evaluation.writers import write_json

    target = Path(args.out) if args.out else run_dir
    if target is None:
        raise UsageError("--robustness needs --out DIR when RUN_OR_MODEL is not a run directory")
    if not args.out:
        _check_run_data(run_dir, record)
    corruptions = [c.strip() for c in args.corruptions.split(",") if c.strip()] if args.corruptions else None
    result = robustness_curves(
        model,
        data,
        args.split,
        device=device,
        tta=tta,
        primary_only=args.primary_only,
        batch_size=args.batch_size,
        seed=args.robustness_seed,
        corruptions=corruptions,
    )
    target.mkdir(parents=True, exist_ok=True)
    write_json(target / ROBUSTNESS_FILE, result)
    plot_robustness(target / ROBUSTNESS_FIGURE, result)
    if run_dir is not None and target.resolve() == run_dir.resolve():
        from mmfuse.evaluation.html_report import write_report

        write_report(run_dir)  # the run's page now shows the curves
    return result


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


def _check_run_data(run_dir: Path, record: dict) -> None:
    """Refuse when the run's metrics.json records other data for this split (a dataset changed since training)."""
    from mmfuse.evaluation.provenance import DATA_KEY, check_same_data
    from mmfuse.evaluation.run_files import read_json
    from mmfuse.runs import METRICS_FILE

    metrics = read_json(run_dir / METRICS_FILE)
    reference = metrics.get(DATA_KEY, record["split"]) if metrics is not None else None
    if reference is not None:
        check_same_data(
            reference.mapping(), str(metrics.file), record, f"this evaluation of {record['root']}"
        )


def resolve_tta(flag: bool | None, run_dir: Path | None) -> tuple[bool | list[str], str]:
    """The TTA setting to evaluate with and where it came from: ``--tta``/``--no-tta``, else the run's own."""
    if flag is not None:
        return flag, "--tta" if flag else "--no-tta"
    from mmfuse.runs import CONFIG_FILE
    from mmfuse.training.config import load_config

    if run_dir is not None and (run_dir / CONFIG_FILE).is_file():
        return load_config(run_dir / CONFIG_FILE)["evaluation"]["tta"], "the run's evaluation.tta"
    return False, "the default for a model that is not a run"


def describe_tta(tta: bool | list[str], source: str) -> str:
    """``TTA on (6 views; the run's evaluation.tta)``: what the printed numbers were computed with."""
    from mmfuse.evaluation.inference import resolve_views

    views = resolve_views(tta)
    state = f"on ({len(views)} views" if len(views) > 1 else "off (1 view"
    return f"TTA {state}; {source})"


def _refuse_to_replace(metrics: Path, overwrite: bool) -> None:
    """A training run's metrics.json is its record (the report and model card read it): never replace it silently."""
    from mmfuse.fileio import check_output_file

    check_output_file(metrics)  # nor a device or FIFO under its name, even with --overwrite
    if metrics.exists() and not overwrite:
        from mmfuse.errors import RunDirError

        raise RunDirError(
            f"--out {metrics.parent} already holds {metrics.name} (a training run's results or an earlier "
            "evaluation); choose another folder, or pass --overwrite to replace it"
        )


def run(args: argparse.Namespace) -> int:
    from mmfuse.evaluation.bootstrap import BootstrapOptions
    from mmfuse.evaluation.calibration import calibration_report, format_ece
    from mmfuse.evaluation.evaluate import (
        evaluation_dataset,
        predict_split,
        write_calibration,
        write_split_report,
    )
    from mmfuse.evaluation.inference import resolve_views, with_temperatures
    from mmfuse.evaluation.provenance import DATA_KEY, data_record
    from mmfuse.evaluation.report import final_probabilities, format_class_table, format_table, split_metrics
    from mmfuse.evaluation.writers import json_safe, write_json
    from mmfuse.runs import METRICS_FILE, load_run_or_model, run_model_dir
    from mmfuse.runtime.device import select_device
    from mmfuse.threads import set_threads

    set_threads(args.threads)
    if args.out and Path(args.out).exists() and not Path(args.out).is_dir():
        raise UsageError(f"--out {args.out} is a file; give a directory to write the report into")
    if args.out:
        _refuse_to_replace(Path(args.out) / METRICS_FILE, args.overwrite)  # before minutes of inference
    model_dir = run_model_dir(args.model)
    run_dir = model_dir.parent if model_dir else None
    tta, tta_source = resolve_tta(args.tta, run_dir)
    model = load_run_or_model(args.model)
    device = select_device(args.device)
    model.to(device)
    data = data_section(args, args.model)
    if data is None:
        raise UsageError(
            "--data ROOT is required (the dataset folder) unless RUN_OR_MODEL is a run directory"
        )
    _refuse_other_data_in_run(args, data, run_dir)
    dataset = evaluation_dataset(model, data, args.split)
    raw = predict_split(
        model,
        dataset,
        device=device,
        tta=tta,
        primary_only=args.primary_only,
        batch_size=args.batch_size,
        calibrated=False,
    )
    temperatures = None if args.no_temperature else model.temperatures
    predictions = with_temperatures(raw, temperatures)
    records = {args.split: data_record(data, args.split, raw)}
    weights = model.head_weights_dict
    bootstrap = BootstrapOptions(args.bootstrap, args.bootstrap_seed, args.level) if args.bootstrap else None
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        report = write_split_report(out, args.split, predictions, model.tasks, weights, bootstrap=bootstrap)
        metrics = {args.split: report, "head_weights": weights, DATA_KEY: records}
        write_json(out / METRICS_FILE, metrics)
        calibration = write_calibration(
            out, {args.split: raw}, {args.split: predictions}, model, fitted_on=None, data=records
        )[args.split]
    else:
        report = split_metrics(predictions, model.tasks, weights, bootstrap=bootstrap)
        metrics = {args.split: report, "head_weights": weights, DATA_KEY: records}
        calibration = calibration_report(
            final_probabilities(raw, weights),
            final_probabilities(predictions, weights),
            raw.labels,
            model.tasks,
        )
    metrics["tta"] = {"views": list(resolve_views(tta)), "source": tta_source}
    metrics["calibration"] = {
        "temperature_scaled": bool(temperatures),
        "ece_raw": calibration["before"]["ece"],
        "ece_scaled": calibration["after"]["ece"],
    }
    robustness = None
    if args.robustness:
        # the curves multiply the cost by 51: they use TTA only when --tta asks for it
        robustness = _robustness(args, model, device, data, records[args.split], run_dir, tta=args.tta is True)
        metrics["robustness"] = robustness
    if args.json:
        print(json.dumps(json_safe(metrics), indent=2))
        return 0
    mode = "primary only" if args.primary_only else "both images"
    print(f"{args.split} ({len(predictions.case_ids)} cases, {mode}, {describe_tta(tta, tta_source)}):")
    print(format_table(metrics[args.split], model.tasks))
    print()
    print(format_class_table(metrics[args.split]["final"], model.tasks))
    print()
    print(format_ece(calibration, model.tasks, scaled=bool(temperatures)))
    if robustness is not None:
        from mmfuse.evaluation.robustness import format_robustness

        print()
        print(format_robustness(robustness))
    if args.out:
        print(f"report written to {args.out}")
    return 0
