"""The AAB fusion block at every Swin-T stage: time, peak memory and agreement of each implementation.

Each stage pairs Swin-T's map (96/192/384/768 channels at 3136/784/196/49 positions for 224 px) with
MobileNetV3-L's map at the same reduction, as ``build_model("ammfm-swin", fusion_stages="all")`` does.
Every implementation runs the same block weights, so differences in output are the implementation's.
"""

from __future__ import annotations

import copy
import math

import torch

from benchmarks.memory import peak_bytes
from benchmarks.timing import Settings, interleaved, summary_ms
from mmfuse import build_model
from mmfuse.attention import attention_flops, effective_key_pool
from mmfuse.registry import create_fusion

# name -> fusion options; "exact" variants compute Eq. 1 as written, pooled ones approximate it.
VARIANTS: dict[str, dict] = {
    "materialized": {"attention": "materialized", "max_key_tokens": None},
    "sdpa": {"attention": "sdpa", "max_key_tokens": None},
    "chunked": {"attention": "chunked", "max_key_tokens": None},
    "materialized-pool196": {"attention": "materialized", "max_key_tokens": 196},
    "sdpa-pool196": {"attention": "sdpa", "max_key_tokens": 196},
}
REFERENCE_VARIANT = "materialized"


def swin_stages(img_size: int = 224) -> list[dict]:
    """Channel counts and sizes of the primary/auxiliary maps at each Swin-T stage of ammfm-swin."""
    model = build_model("ammfm-swin", fusion_stages="all", img_size=img_size)
    stages = []
    for stage, auxiliary_stage in model.fusion_pairs.items():
        reduction = model.primary_encoder.reductions[stage]
        side = img_size // reduction
        stages.append(
            {
                "stage": stage,
                "reduction": reduction,
                "tokens": side * side,
                "side": side,
                "primary_channels": model.primary_encoder.channels[stage],
                "auxiliary_channels": model.auxiliary_encoder.channels[auxiliary_stage],
            }
        )
    return stages


def default_variant() -> str:
    """The variant whose options equal the ``aab`` block's defaults."""
    defaults = create_fusion("aab", 1, 1).attention.kwargs
    implementation = "sdpa" if defaults["implementation"] == "auto" else defaults["implementation"]
    for name, options in VARIANTS.items():
        if (options["attention"], options["max_key_tokens"]) == (
            implementation,
            defaults["max_key_tokens"],
        ):
            return name
    return f"{defaults['implementation']} (max_key_tokens={defaults['max_key_tokens']})"


def _blocks(stage: dict, settings: Settings) -> dict[str, torch.nn.Module]:
    torch.manual_seed(stage["stage"])
    reference = create_fusion(
        "aab", stage["primary_channels"], stage["auxiliary_channels"], **VARIANTS[REFERENCE_VARIANT]
    )
    blocks = {}
    for name, options in VARIANTS.items():
        block = create_fusion("aab", stage["primary_channels"], stage["auxiliary_channels"], **options)
        block.load_state_dict(copy.deepcopy(reference.state_dict()))
        blocks[name] = block.to(settings.device).eval()
    return blocks


def _inputs(stage: dict, batch: int, settings: Settings) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1000 + stage["stage"])
    side = stage["side"]
    primary = torch.randn(batch, stage["primary_channels"], side, side, generator=generator)
    auxiliary = torch.randn(batch, stage["auxiliary_channels"], side, side, generator=generator)
    return primary.to(settings.device), auxiliary.to(settings.device)


def _agreement(blocks: dict[str, torch.nn.Module], primary: torch.Tensor, auxiliary: torch.Tensor) -> dict:
    """Max |difference| to the materialised output, in fp32 (pooled variants: an approximation error)."""
    with torch.inference_mode():
        outputs = {name: block(primary, auxiliary)[0].float() for name, block in blocks.items()}
    reference = outputs[REFERENCE_VARIANT]
    scale = float(reference.abs().max())
    return {
        name: {
            "max_abs_diff": float((out - reference).abs().max()),
            "max_rel_diff": float((out - reference).abs().max()) / scale,
        }
        for name, out in outputs.items()
    }


def run(settings: Settings, *, batch: int | None = None, stages: list[dict] | None = None) -> dict:
    """The ``aab`` section: one entry per stage, each with one entry per implementation."""
    batch = batch or (24 if settings.cuda else 1)
    stages = stages if stages is not None else swin_stages()
    results = []
    for stage in stages:
        blocks = _blocks(stage, settings)
        primary, auxiliary = _inputs(stage, batch, settings)
        agreement = _agreement(blocks, primary, auxiliary)

        def call(block, primary=primary, auxiliary=auxiliary):
            def run_block():
                with torch.inference_mode(), settings.autocast():
                    return block(primary, auxiliary)

            return run_block

        calls = {name: call(block) for name, block in blocks.items()}
        seconds = interleaved(
            calls,
            device=settings.device,
            warmup=2,
            rounds=5 if settings.quick else 11,
            block=3 if settings.quick else 5,
        )
        variants = {}
        for name, options in VARIANTS.items():
            pool = effective_key_pool(stage["tokens"], 1, options["max_key_tokens"])
            key_tokens = math.ceil(stage["side"] / pool) ** 2
            variants[name] = {
                **summary_ms(seconds[name]),
                "peak_memory_mb": round(peak_bytes(calls[name], settings.device) / 2**20, 3),
                "key_tokens": key_tokens,
                "exact": pool == 1,
                "attention_flops": 2
                * batch
                * attention_flops(
                    stage["tokens"], key_tokens, stage["primary_channels"], stage["primary_channels"]
                ),
                **agreement[name],
            }
        results.append({**stage, "batch": batch, "implementations": variants})
    return {
        "batch": batch,
        "precision": settings.precision,
        "memory": "torch.cuda.max_memory_allocated" if settings.cuda else "torch.profiler allocation records",
        "default": default_variant(),
        "stages": results,
        "conclusion": conclusion(results, default_variant()),
    }


def conclusion(stages: list[dict], default: str) -> str:
    """What the figures say about the two choices behind the default: kernel, and key pooling."""
    findings = []
    sdpa_wins = []
    for stage in stages:
        impl = stage["implementations"]
        materialized, sdpa = impl["materialized"], impl["sdpa"]
        sdpa_wins.append(sdpa["median_ms"] <= materialized["median_ms"])
        finding = (
            f"{stage['tokens']} tokens: sdpa takes {sdpa['median_ms'] / materialized['median_ms']:.2f}x the time "
            f"and {sdpa['peak_memory_mb'] / max(materialized['peak_memory_mb'], 1e-9):.2f}x the peak memory "
            f"of materialized (max |diff| {sdpa['max_abs_diff']:.1e})"
        )
        pooled = impl["sdpa-pool196"]
        if not pooled["exact"]:
            finding += (
                f"; pooling keys to {pooled['key_tokens']} takes {pooled['median_ms'] / sdpa['median_ms']:.2f}x "
                f"the time of exact sdpa (an approximation: max relative deviation {pooled['max_rel_diff']:.2f} "
                "with random weights)"
            )
        findings.append(finding)
    if all(sdpa_wins):
        kernel = "sdpa is at least as fast as materialized at every stage"
    elif not any(sdpa_wins):
        kernel = "materialized is faster than sdpa at every stage on this device"
    else:
        kernel = "neither kernel is faster at every stage"
    pooled_stages = [s for s in stages if not s["implementations"]["sdpa-pool196"]["exact"]]
    pooling_pays = all(
        s["implementations"]["sdpa-pool196"]["median_ms"] < s["implementations"]["sdpa"]["median_ms"]
        for s in pooled_stages
    )
    pooling = (
        "pooling keys to 196 is faster wherever it applies"
        if pooling_pays
        else "pooling keys to 196 is not faster at every stage it applies to"
    )
    supported = (all(sdpa_wins) or not default.startswith("sdpa")) and (pooling_pays or "pool" not in default)
    verdict = "support" if supported else "do not fully support"
    return (
        f"{'; '.join(findings)}. Kernel: {kernel}. Pooling: {pooling}. "
        f"The figures {verdict} the default {default!r}."
    )
