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
