"""The paper's AMMFM against this project's fast configuration, side by side in one process.

Batch-1 latency of ``ammfm-swin``, ``ammfm-swin-fast`` and ``baseline-swin`` (224 px, random weights),
measured interleaved so a shared machine's load falls on all three alike; then the paper placement's
fusion blocks (reductions 4, 8, 16) one by one at batch 24: time and peak memory of exact attention with
each implementation, and of the fast configuration's pooled keys.

Run: python -m benchmarks.paper_vs_fast [--device cuda] [--json PATH] [--rounds N]
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path

import torch

from benchmarks.memory import peak_bytes
from benchmarks.timing import Settings, interleaved, summary_ms
from mmfuse import build_model
from mmfuse.registry import create_fusion

MODELS = ("baseline-swin", "ammfm-swin", "ammfm-swin-fast")
BLOCK_VARIANTS = {
    "exact-sdpa": {"attention": "sdpa", "max_key_tokens": None},
    "exact-chunked": {"attention": "chunked", "max_key_tokens": None},
    "pooled-196": {"attention": "sdpa", "max_key_tokens": 196},
}


def latency(settings: Settings, rounds: int) -> dict:
    """Median batch-1 latency of each model and its ratio to ``baseline-swin``."""
    torch.manual_seed(0)
    models = {name: build_model(name).to(settings.device).eval() for name in MODELS}
    x = settings.images(1)

    def call(model):
        def run():
            with torch.inference_mode(), settings.autocast():
                return model(primary=x, auxiliary=x)

        return run

    seconds = interleaved(
        {n: call(m) for n, m in models.items()}, device=settings.device, warmup=2, rounds=rounds, block=2
    )
    rows = {name: summary_ms(values) for name, values in seconds.items()}
    for row in rows.values():
        row["ratio_to_baseline"] = round(row["median_ms"] / rows["baseline-swin"]["median_ms"], 3)
    return rows


def blocks(settings: Settings, batch: int, rounds: int) -> list[dict]:
    """Each fusion block of the paper placement at ``batch``: time and peak memory per implementation."""
    model = build_model("ammfm-swin")
    results = []
    for stage, auxiliary_stage in model.fusion_pairs.items():
        p_channels = model.primary_encoder.channels[stage]
        a_channels = model.auxiliary_encoder.channels[auxiliary_stage]
        side = 224 // model.primary_encoder.reductions[stage]
        torch.manual_seed(stage)
        reference = create_fusion("aab", p_channels, a_channels)
        variants = {}
        for name, options in BLOCK_VARIANTS.items():
            block = create_fusion("aab", p_channels, a_channels, **options)
            block.load_state_dict(copy.deepcopy(reference.state_dict()))
            variants[name] = block.to(settings.device).eval()
        generator = torch.Generator().manual_seed(stage)
        primary = torch.randn(batch, p_channels, side, side, generator=generator).to(settings.device)
        auxiliary = torch.randn(batch, a_channels, side, side, generator=generator).to(settings.device)

        def call(block, primary=primary, auxiliary=auxiliary):
            def run():
                with torch.inference_mode(), settings.autocast():
                    return block(primary, auxiliary)

            return run

        calls = {name: call(block) for name, block in variants.items()}
        seconds = interleaved(calls, device=settings.device, warmup=1, rounds=rounds)
        results.append(
            {
                "stage": stage,
                "tokens": side * side,
                "channels": p_channels,
                "batch": batch,
                "variants": {
                    name: {
                        **summary_ms(seconds[name]),
                        "peak_memory_mb": round(peak_bytes(calls[name], settings.device) / 2**20, 1),
                    }
                    for name in calls
                },
            }
        )
    return results


def markdown(report: dict) -> str:
    lines = ["| model | median ms (batch 1) | × baseline-swin |", "|---|---:|---:|"]
    for name, row in report["latency"].items():
        lines.append(f"| {name} | {row['median_ms']:.1f} | {row['ratio_to_baseline']:.3f} |")
    lines += [
        "",
        "| stage (tokens, channels) | implementation | median ms | peak MB |",
        "|---|---|---:|---:|",
    ]
    for stage in report["blocks"]:
        for name, row in stage["variants"].items():
            where = f"{stage['stage']} ({stage['tokens']}, {stage['channels']})"
            lines.append(f"| {where} | {name} | {row['median_ms']:.1f} | {row['peak_memory_mb']:.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rounds", type=int, default=9, help="interleaved rounds per measurement")
    parser.add_argument("--batch", type=int, default=24, help="batch of the per-block measurement")
    parser.add_argument("--json", type=Path, help="also write the report as JSON here")
    args = parser.parse_args(argv)
    settings = Settings(torch.device(args.device))
    report = {
        "device": str(settings.device),
        "precision": settings.precision,
        "threads": torch.get_num_threads(),
        "latency": latency(settings, args.rounds),
        "blocks": blocks(settings, args.batch, max(3, args.rounds // 3)),
    }
    print(markdown(report))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
