"""``mmfuse demo [--out RUN]``: the whole pipeline on this machine in a few minutes, with no download.

Synthesizes a small Derm7pt-format release, prepares its cache, trains a small AMMFM from scratch
(the recipe of ``examples/configs/demo.yaml``: SWA, the three-head loss), evaluates with TTA and the
head-weight search, and prints the per-head table, where the report is, and what the weight search chose with
each head's validation score.
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

from mmfuse.cli.argtypes import add_threads_option, image_size, int_in_range, positive_int, seed_int
from mmfuse.errors import UsageError
from mmfuse.limits import MAX_SYNTH_CASES
from mmfuse.threads import AUTO

MARKER = ".mmfuse-demo"

# Chosen by measurement on a 2-core CPU (docs/training.md): small timm backbones from scratch, 64 px,
# a device-resident cache with batch augmentation. Mirrors examples/configs/demo.yaml.
DEMO_CONFIG: dict = {
    "model": {
        "preset": "ammfm-swin",
        "primary": "test_resnet",
        "auxiliary": "test_efficientnet",
        "img_size": 64,
        "pretrained": False,
    },
    "data": {"format": "derm7pt", "root": "data", "device_cache": True},
    "train": {
        "epochs": 40,
        "batch_size": 16,
        "lr": 2.0e-3,
        "schedule": "cosine",
        "swa": {"epochs": 10, "lr": 2.0e-4, "anneal_epochs": 2},
        "seed": 0,
        "log_every": 20,
    },
    "evaluation": {
        "tta": True,
        "weight_search": {"step": 0.05, "objective": "avg_auc"},
        "splits": ["valid", "test"],
    },
}
DEMO_CASES = 600
DEMO_IMAGE_SIZE = 96


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo", help="synthesize a small release, train a small AMMFM on it, evaluate, print the table"
    )
    parser.add_argument(
        "--out", default="mmfuse-demo", metavar="RUN", help="run directory (default: ./mmfuse-demo)"
    )
    parser.add_argument(
        "--cases",
        type=int_in_range(1, MAX_SYNTH_CASES),
        default=DEMO_CASES,
        help=f"synthetic cases (default: {DEMO_CASES})",
    )
    parser.add_argument(
        "--epochs", type=positive_int, help=f"training epochs (default: {DEMO_CONFIG['train']['epochs']})"
    )
    parser.add_argument(
        "--img-size", type=image_size, help=f"model input size (default: {DEMO_CONFIG['model']['img_size']})"
    )
    parser.add_argument(
        "--seed", type=seed_int, default=0, help="seed of the synthetic release and of training"
    )
    add_threads_option(parser)
    parser.set_defaults(func=run)


def demo_config(
    root: Path,
    *,
    epochs: int | None = None,
    img_size: int | None = None,
    seed: int = 0,
    threads: int | str = AUTO,
) -> dict:
    """The demo's run config for a release at ``root`` (SWA keeps a quarter of the epochs when shortened)."""
    from mmfuse.training.config import resolve

    config = copy.deepcopy(DEMO_CONFIG)
    config["data"]["root"] = str(root)
    config["train"]["seed"] = seed
    config["train"]["threads"] = threads
    if epochs is not None:
        config["train"]["epochs"] = epochs
        config["train"]["swa"]["epochs"] = min(config["train"]["swa"]["epochs"], epochs // 4)
    if img_size is not None:
        config["model"]["img_size"] = img_size
    return resolve(config)


def _fresh_out(out: Path) -> None:
    """Reuse a previous demo's directory; never touch one that holds anything else."""
    import shutil

    if not out.exists():
        return
    if (out / MARKER).is_file():
        shutil.rmtree(out)
    elif out.is_dir() and not any(out.iterdir()):
        return
    else:
        raise UsageError(f"--out {out} exists and is not a previous demo run; choose another directory")


def run(args: argparse.Namespace) -> int:
    from mmfuse.data import load_table, prepare_cache
    from mmfuse.data.synth import synthesize
    from mmfuse.evaluation.report import format_table
    from mmfuse.pipeline import train
    from mmfuse.runtime.data import dataset_options
    from mmfuse.threads import set_threads

    started = time.perf_counter()
    # Chosen once, before the load of our own work counts against it; the run's config.yaml records it.
    choice = set_threads(args.threads)
    print(f"torch threads: {choice.threads} ({choice.reason}; --threads N to choose)", flush=True)
    out = Path(args.out)
    _fresh_out(out)
    run_dir = out / "run"
    root = out / "data"
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text(
        "written by `mmfuse demo`; the next demo with this --out replaces this folder\n"
    )
    print(f"synthesizing {args.cases} cases into {root} ...", flush=True)
    synthesize(root, cases=args.cases, size=DEMO_IMAGE_SIZE, seed=args.seed)
    config = demo_config(
        root, epochs=args.epochs, img_size=args.img_size, seed=args.seed, threads=choice.threads
    )
    table = load_table(dataset_options(config))
    prepare_cache(root, [r for r in table.records if r is not None], config["model"]["img_size"])
    train_cfg = config["train"]
    model = config["model"]
    print(
        f"training {model['primary']} + {model['auxiliary']} ({model.get('fusion', 'aab')} fusion) for "
        f"{train_cfg['epochs']} epochs (SWA over the last {train_cfg['swa']['epochs']}) ...",
        flush=True,
    )
    result = train(config, run_dir, threads=choice)
    print(f"\ntest split ({len(table.split_records('test'))} cases, TTA):")
    print(format_table(result.metrics["test"], result.model.tasks))
    print(
        f"\nreport: {run_dir / 'report.html'} (metrics.json, plots, predictions and the model in {run_dir})"
    )
    print(f"wall time: {time.perf_counter() - started:.0f} s")
    print(weight_search_summary(result.metrics, config["evaluation"]["weight_search"]["objective"]))
    return 0


def weight_search_summary(metrics: dict, objective: str) -> str:
    """Two lines: the head weights the search chose on the validation split, and each head's score there."""
    label = {"avg_auc": "AVG AUC", "avg_acc": "AVG ACC"}[objective]
    weights = ", ".join(f"{h} {w:.2f}" for h, w in metrics["head_weights"].items())
    valid = metrics["valid"]
    heads = [h for h in ("primary", "auxiliary", "fusion") if h in valid]
    scores = ", ".join(f"{h} {100 * valid[h][objective]:.1f}" for h in heads)
    return (
        f"weight search on valid (objective {label}) chose: {weights}\n"
        f"valid {label} (%): final {100 * valid['final'][objective]:.1f}; each head alone: {scores}"
    )
