"""mmfuse's benchmark suite: one process, every section side by side, one JSON report.

    python benchmarks/run.py [--quick] [--device cpu|cuda] [--sections models,aab,...] --json OUT

Sections: ``models`` (parameters, FLOPs, latency, throughput and their ratios to baseline-swin),
``aab`` (the attention block per Swin stage and implementation), ``data`` (decode + augment from
original JPEGs against the prepared cache), ``training`` (train-step throughput, eager), ``compiled``
(the same step eager against ``torch.compile``; by default on CUDA only, where it matters) and ``peers``
(AMMFM beside FusionM4Net, TFormer, CAFNet and Incep-com: params, FLOPs, latency, throughput, ratios to
ammfm-swin; on request: ``--sections peers``) and ``evaluation`` (bootstrap intervals and a paired
comparison on a Derm7pt-sized test split; CPU only, it runs no model). ``--quick``
repeats less (same models, same sizes) so that the whole suite fits in 10 minutes on a 2-core CPU.
The report is rewritten after every section, so a run cut short keeps what it measured.
docs/performance.md explains the figures.
"""

from __future__ import annotations

import os

os.environ.setdefault("KINETO_LOG_LEVEL", "5")  # the CPU memory profiler's start-up chatter

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import traceback  # noqa: E402
from pathlib import Path  # noqa: E402

if __package__ in (None, ""):
    # Run as a script: make ``benchmarks`` importable from the repository root.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.environment import describe  # noqa: E402
from benchmarks.report import peers_table  # noqa: E402

SECTIONS = ("models", "aab", "data", "training", "compiled", "peers", "evaluation")
DEFAULT_SECTIONS = {
    "cpu": ("models", "aab", "data", "training", "evaluation"),
    "cuda": ("models", "aab", "data", "training", "compiled"),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (10 minutes on 2 CPU cores)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (or cuda:N)")
    parser.add_argument("--json", type=Path, help="write the report here (default: print it)")
    parser.add_argument(
        "--sections",
        help=f"comma-separated subset of {','.join(SECTIONS)} (default: all; on CPU all but compiled)",
    )
    parser.add_argument(
        "--no-compile", action="store_true", help="skip torch.compile in the training section"
    )
    parser.add_argument(
        "--data-cases", type=int, default=None, help="cases in the data section's synthetic release"
    )
    parser.add_argument(
        "--merge",
        action="store_true",
        help="start from the existing --json report and replace only the sections run now",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = parser.parse_args(argv)
    if args.sections is None:
        args.sections = list(DEFAULT_SECTIONS["cuda" if args.device.startswith("cuda") else "cpu"])
    else:
        args.sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = set(args.sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}; choose from {', '.join(SECTIONS)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    from benchmarks.timing import Settings, stopwatch

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("run.py: error: --device cuda was asked for, but torch sees no CUDA device", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    settings = Settings(device=device, quick=args.quick)
    report: dict = {}
    if args.merge and args.json and args.json.is_file():
        report = json.loads(args.json.read_text())
        if report.get("device") != device.type:
            print(f"run.py: error: {args.json} holds a {report.get('device')} report", file=sys.stderr)
            return 2
    report.update({"device": device.type, "quick": args.quick, "environment": describe(device)})
    report["environment"]["precision"] = settings.precision
    durations = dict(report.get("section_seconds", {}))
    loads = dict(report.get("section_load_average", {}))  # 1-minute load when each section started
    failed = []
    from mmfuse.progress import Steps

    steps = Steps(len(args.sections), "benchmarks", progress="lines", unit="section")
    for section in args.sections:
        print(f"[{section}] running ...", file=sys.stderr, flush=True)
        loads[section] = round(os.getloadavg()[0], 2)
        report["section_load_average"] = loads
        with stopwatch() as elapsed:
            try:
                report[section] = run_section(section, settings, args, report)
            except Exception as exc:  # one broken section must not cost the others' figures
                traceback.print_exc()
                report[section] = {"error": f"{type(exc).__name__}: {exc}"}
                failed.append(section)
        durations[section] = elapsed["seconds"]
        report["section_seconds"] = durations
        print(f"[{section}] done in {elapsed['seconds']:.0f} s", file=sys.stderr, flush=True)
        steps.step(section)
        if args.json:
            write(report, args.json)  # a crash in a later section keeps the sections already measured
    report["environment"]["load_average_end"] = list(os.getloadavg())
    if args.json:
        write(report, args.json)
        print(f"wrote {args.json}", file=sys.stderr)
    else:
        print(json.dumps(report, indent=2))
    print(headline(report), file=sys.stderr)
    if failed:
        print(f"run.py: sections that failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


def run_section(section: str, settings, args: argparse.Namespace, report: dict) -> dict:
    if section == "models":
        from benchmarks import models

        report["models_reference"] = models.REFERENCE  # what each entry's "ratios" divide by
        return models.run(settings)
    if section == "peers":
        from benchmarks import peers

        report["peers_reference"] = peers.REFERENCE
        return peers.run(settings)
    if section == "aab":
        from benchmarks import attention

        return attention.run(settings)
    if section == "evaluation":
        from benchmarks import evaluation

        return evaluation.run(settings)
    if section == "data":
        from benchmarks import data_path

        return data_path.run(settings, cases=args.data_cases)
    from benchmarks import training
    from benchmarks.models import build

    if section == "compiled":
        # Compiling forward and backward takes minutes per model: only the recipe's model, against eager.
        return training.run(settings, {"ammfm-swin": build("ammfm-swin")}, compile=True)
    return training.run(settings)


def write(report: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(report, indent=2) + "\n")
    temporary.replace(path)


def headline(report: dict) -> str:
    """The figures the project promises, in one line each."""
    lines = []
    models = report.get("models", {})
    if "ammfm-swin" in models and "ratios" in models["ammfm-swin"]:
        ratios = models["ammfm-swin"]["ratios"]
        budget = " (CPU budget <= 0.6)" if report.get("device") == "cpu" else ""
        pairwise = ratios.get("latency_ms_b1_pairwise")
        lines.append(
            f"ammfm-swin / baseline-swin: params {ratios['params']:.3f}, FLOPs {ratios['flops']:.3f}, "
            f"latency b1 {ratios['latency_ms_b1']:.3f} in the table"
            + (f", {pairwise:.3f} side by side" if pairwise is not None else "")
            + budget
        )
    peers = report.get("peers", {})
    if any(isinstance(e, dict) and "ratios" in e for e in peers.values()):
        lines.append(peers_table(peers, report.get("peers_reference", "ammfm-swin")))
    evaluation = report.get("evaluation", {})
    if "seconds_intervals_only" in evaluation:
        lines.append(
            f"evaluation: {evaluation['resamples']} bootstrap resamples of {evaluation['cases']} cases add "
            f"{evaluation['seconds_intervals_only']:.1f} s; a paired compare takes {evaluation['seconds_compare']:.1f} s"
        )
    data = report.get("data", {})
    if "speedup" in data:
        lines.append(f"data path: cache {data['speedup']:.2f}x faster than decoding originals (target >= 2)")
    for key, ratio in report.get("training", {}).get("ratios", {}).items():
        lines.append(f"training {key} / baseline-swin: {ratio:.3f}x the pairs/s")
    for name, modes in report.get("compiled", {}).get("configurations", {}).items():
        if "compiled" in modes:
            gain = modes["compiled"]["pairs_per_s"] / modes["eager"]["pairs_per_s"]
            lines.append(f"training {name}: torch.compile {gain:.2f}x eager's pairs/s")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
