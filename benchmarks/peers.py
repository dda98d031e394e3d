"""The peer methods side by side with AMMFM: params, FLOPs, batch-1 latency, batch-24 throughput.

``ammfm-swin``, ``ammfm-swin-fast`` (when this build has it) and every peer preset (``fusionm4net``,
``tformer``, ``cafnet``, ``incep-com``), full size with random weights, measured in one process with the
models' calls interleaved (so machine load hits all alike), as ratios to ``ammfm-swin``. Each model runs
at its own input size (Incep-com: 299 px); models with a metadata input get a 0/1 metadata vector.
"""

from __future__ import annotations

import torch

from benchmarks import models as model_bench
from benchmarks.timing import Settings
from mmfuse import build_model, list_presets
from mmfuse.params import PEER_CONFIGURATIONS

REFERENCE = "ammfm-swin"
OURS = ("ammfm-swin", "ammfm-swin-fast")
PEERS = tuple(c.name for c in PEER_CONFIGURATIONS)


def configurations() -> list[str]:
    available = set(list_presets())
    return [name for name in (*OURS, *PEERS) if name in available]


def run(
    settings: Settings,
    models: dict | None = None,
    *,
    reference: str = REFERENCE,
    throughput_batch: int = 24,
) -> dict:
    """The ``peers`` section; ``models`` defaults to :func:`configurations` built at full size."""
    if models is None:
        torch.manual_seed(0)
        models = {name: build_model(name) for name in configurations()}
    results = model_bench.run(
        settings, models, reference=reference, throughput_batch=throughput_batch, own_sizes=True
    )
    missing = [name for name in (*OURS, *PEERS) if name not in models]
    if missing:
        results["not_measured"] = {name: "no such preset in this build" for name in missing}
    return results


def format_table(results: dict, reference: str = REFERENCE) -> str:
    """The peers section as a Markdown table (docs/choosing.md)."""
    entries = {n: e for n, e in results.items() if isinstance(e, dict) and "ratios" in e}
    key = next(k for k in next(iter(entries.values())) if k.startswith("throughput_b") and k[12:].isdigit())
    batch = key[len("throughput_b") :]
    lines = [
        f"| method | px | params (M) | GFLOPs | latency b1 (ms) | throughput b{batch} (pairs/s) "
        f"| params | FLOPs | latency | throughput |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, entry in entries.items():
        r = entry["ratios"]
        lines.append(
            f"| `{name}` | {entry['img_size']} | {entry['params'] / 1e6:.2f} | {entry['flops'] / 1e9:.1f} "
            f"| {entry['latency_ms_b1']:.0f} | {entry[key]:.1f} | {r['params']:.2f} | {r['flops']:.2f} "
            f"| {r['latency_ms_b1']:.2f} | {r[key]:.2f} |"
        )
    return "\n".join(lines) + f"\n\nThe last four columns are ratios to `{reference}`."
