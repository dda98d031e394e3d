"""Whole models: parameters, FLOPs, batch-1 latency and batch-24 throughput, as ratios to baseline-swin.

The configurations are the paper's (named as in ``mmfuse params``): AMMFM and the symmetric baseline
for each primary backbone, and the asymmetric/symmetric pairs with every fusion block (Table 9).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.timing import Settings, interleaved, summary_ms
from mmfuse import FusionModel, build_model
from mmfuse.params import PAPER_CONFIGURATIONS, count_parameters

REFERENCE = "baseline-swin"
CONFIGURATIONS: tuple[str, ...] = (
    "ammfm-swin",
    "baseline-swin",
    "aff-concat-swin",
    "aff-bab-swin",
    "sff-aab-swin",
    "sff-bab-swin",
    "ammfm-resnet",
    "baseline-resnet",
    "ammfm-convnext",
    "baseline-convnext",
    "ammfm-swin-all-stages",
    # This project's own configurations, beside the paper's: the -fast variants and the projected AAB reading.
    "ammfm-swin-fast",
    "ammfm-resnet-fast",
    "ammfm-convnext-fast",
    "ammfm-swin-projected",
)
DESCRIPTIONS = {c.name: c for c in PAPER_CONFIGURATIONS}
# Not a row of the paper: the cost of fusing at every stage (the option the default stage replaces).
HEADLINE = "ammfm-swin"  # the configuration whose latency budget the project promises
EXTRA = {"ammfm-swin-all-stages": ("ammfm-swin", {"fusion_stages": "all"})}


def build(name: str, **overrides) -> FusionModel:
    """One of the paper's two-branch configurations by its ``mmfuse params`` name (random weights)."""
    if name in EXTRA:
        preset, extra = EXTRA[name]
        return build_model(preset, **{**extra, **overrides})
    try:
        description = DESCRIPTIONS[name]
    except KeyError:
        raise ValueError(f"unknown configuration {name!r}; known: {sorted(DESCRIPTIONS)}") from None
    if description.preset is None:
        raise ValueError(f"{name!r} is a single-branch configuration; the benchmarks need two branches")
    return build_model(description.preset, **{**description.overrides, **overrides})


def prepare(model: FusionModel, settings: Settings) -> FusionModel:
    model = model.to(settings.device).eval()
    if settings.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def has_attention(model: FusionModel) -> bool:
    return any(hasattr(block, "attention") for block in model.fusion_blocks.values())


def model_inputs(model: FusionModel, x: torch.Tensor) -> dict:
    """Keyword inputs of one forward pass: the pair, and a metadata vector when the model takes one."""
    inputs = {"primary": x, "auxiliary": x}
    if model.uses_metadata:
        generator = torch.Generator().manual_seed(0)
        metadata = (torch.rand(x.shape[0], model.metadata_encoding.size, generator=generator) > 0.7).float()
        inputs["metadata"] = metadata.to(x.device)
    return inputs


@torch.no_grad()
def count_flops(model: FusionModel, settings: Settings) -> int:
    """FLOPs (2 × multiply-accumulates of convolutions and matrix products) of one pair at the model's size."""
    x = settings.images(1, model.preprocessing["img_size"])
    counter = FlopCounterMode(display=False)
    with counter:
        model(**model_inputs(model, x))
    return int(counter.get_total_flops())


def model_flops(model: FusionModel, settings: Settings) -> dict:
    """FLOPs as run, and with materialised attention, whose matrix products the counter always sees.

    ``FlopCounterMode`` has no formula for some CPU ``scaled_dot_product_attention`` kernels and then
    counts them as zero; the materialised implementation computes the same products with ``bmm``.
    """
    as_run = count_flops(model, settings)
    if not has_attention(model):
        return {"flops": as_run, "flops_as_run": as_run}
    config = model.config
    config["fusion_options"] = {**config["fusion_options"], "attention": "materialized"}
    exact = count_flops(prepare(FusionModel(config), settings), settings)
    return {"flops": exact, "flops_as_run": as_run}


def run(
    settings: Settings,
    models: Mapping[str, FusionModel] | None = None,
    *,
    reference: str = REFERENCE,
    throughput_batch: int = 24,
    img_size: int = 224,
    own_sizes: bool = False,
) -> dict:
    """The ``models`` section of the report: every configuration, then ratios to ``reference``.

    ``models`` defaults to :data:`CONFIGURATIONS` built at full size with random weights.
    """
    from mmfuse.progress import Steps

    steps = Steps(4 + (models is None), "[models]", progress="lines", unit="phase")
    if models is None:
        torch.manual_seed(0)
        models = {name: build(name) for name in CONFIGURATIONS}
        steps.step(f"built {len(models)} models")
    models = {name: prepare(model, settings) for name, model in models.items()}
    results = {name: {"params": count_parameters(model)} for name, model in models.items()}
    for name, model in models.items():
        results[name].update(model_flops(model, settings))
        results[name]["fusion_stages"] = model.config["fusion_stages"]
        results[name]["img_size"] = model.preprocessing["img_size"] if own_sizes else img_size
    steps.step("parameters and FLOPs")

    def forward(model: FusionModel, x: torch.Tensor):
        inputs = model_inputs(model, x)

        def call():
            with torch.inference_mode(), settings.autocast():
                return model(**inputs)

        return call

    def images(model: FusionModel, batch: int) -> torch.Tensor:
        # Each model at its own input size when it has one (Inception-v3: 299 px), else img_size.
        size = model.preprocessing["img_size"] if own_sizes else img_size
        return settings.images(batch, size)

    one = {name: images(model, 1) for name, model in models.items()}
    latency = interleaved(
        {name: forward(model, one[name]) for name, model in models.items()},
        device=settings.device,
        warmup=2 if settings.quick else 3,
        rounds=5 if settings.quick else 15,
        block=3 if settings.quick else 5,
    )
    steps.step("latency at batch 1")
    throughput = interleaved(
        {name: forward(model, images(model, throughput_batch)) for name, model in models.items()},
        device=settings.device,
        warmup=1 if not settings.cuda else 3,
        rounds=2 if settings.quick else 4,
        block=1 if not settings.cuda else 5,
    )
    steps.step(f"throughput at batch {throughput_batch}")
    for name in models:
        lat, thr = summary_ms(latency[name]), summary_ms(throughput[name])
        results[name].update(
            {
                "latency_ms_b1": lat["median_ms"],
                "latency_ms_b1_min": lat["min_ms"],
                "latency_samples": lat["samples"],
                f"throughput_b{throughput_batch}": round(throughput_batch * 1e3 / thr["median_ms"], 2),
                f"throughput_b{throughput_batch}_max": round(throughput_batch * 1e3 / thr["min_ms"], 2),
                "throughput_samples": thr["samples"],
            }
        )
    if reference in results:
        base = results[reference]
        for entry in results.values():
            entry["ratios"] = {
                key: round(entry[key] / base[key], 4)
                for key in ("params", "flops", "latency_ms_b1", f"throughput_b{throughput_batch}")
            }
        if HEADLINE in models and HEADLINE != reference:
            # The promised ratio, measured again with only the two models alternating: a table of eleven
            # models cycles ~2 GB of weights through the caches between samples, which adds noise.
            pair = interleaved(
                {name: forward(models[name], one[name]) for name in (HEADLINE, reference)},
                device=settings.device,
                warmup=2,
                rounds=12 if settings.quick else 30,
                block=3 if settings.quick else 5,
            )
            medians = {name: summary_ms(seconds)["median_ms"] for name, seconds in pair.items()}
            for name, median in medians.items():
                results[name]["latency_ms_b1_pairwise"] = median
            results[HEADLINE]["ratios"]["latency_ms_b1_pairwise"] = round(
                medians[HEADLINE] / medians[reference], 4
            )
    steps.step("ratios")
    return results
