"""Training throughput: pairs per second of a full train step (forward, Eq. 2–3 loss, backward, Adam).

On CUDA the step runs as the trainer runs it — bf16 autocast and channels_last — eagerly and under
``torch.compile`` (whose one-off compile time is reported separately). On CPU the same step runs in
fp32 at a small batch, eagerly: compiling there takes minutes and says nothing about the GPU.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch

from benchmarks.models import build
from benchmarks.timing import Settings, interleaved, stopwatch, summary_ms, synchronize
from mmfuse import FusionModel
from mmfuse.training.losses import multitask_loss

CONFIGURATIONS = ("ammfm-swin", "baseline-swin")


def random_labels(model: FusionModel, batch: int, device: torch.device) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    columns = [torch.randint(task.num_classes, (batch,), generator=generator) for task in model.tasks]
    return torch.stack(columns, dim=1).to(device)


def run(
    settings: Settings,
    models: Mapping[str, FusionModel] | None = None,
    *,
    batch: int | None = None,
    compile: bool = False,
    reference: str = "baseline-swin",
    img_size: int = 224,
) -> dict:
    """Pairs/s per configuration, eager, and with ``compile`` also under ``torch.compile``."""
    batch = batch or (24 if settings.cuda else 4 if settings.quick else 8)
    if models is None:
        torch.manual_seed(0)
        models = {name: build(name) for name in CONFIGURATIONS}
    steps: dict[str, Callable[[], None]] = {}
    compile_seconds: dict[str, float] = {}
    for name, model in models.items():
        model = model.to(settings.device).train()
        if settings.channels_last:
            model = model.to(memory_format=torch.channels_last)
        steps[f"{name}/eager"] = train_step(model, batch, settings, img_size=img_size)
        if compile:
            step = train_step(model, batch, settings, torch.compile(model), img_size)
            with stopwatch() as elapsed:
                step()  # the first call compiles forward and backward
                synchronize(settings.device)
            compile_seconds[name] = elapsed["seconds"]
            steps[f"{name}/compiled"] = step
    seconds = interleaved(
        steps,
        device=settings.device,
        warmup=1 if not settings.cuda else 3,
        rounds=2 if settings.quick else 4,
        block=1 if not settings.cuda else 5,
    )
    results: dict[str, dict] = {}
    for key, times in seconds.items():
        name, mode = key.split("/")
        timing = summary_ms(times)
        results.setdefault(name, {})[mode] = {
            "pairs_per_s": round(batch * 1e3 / timing["median_ms"], 2),
            "pairs_per_s_max": round(batch * 1e3 / timing["min_ms"], 2),
            "step_ms": timing["median_ms"],
            "samples": timing["samples"],
        }
        if mode == "compiled":
            results[name][mode]["compile_s"] = compile_seconds[name]
    return {
        "batch": batch,
        "img_size": img_size,
        "precision": settings.precision,
        "optimizer": "Adam",
        "compiled": compile,
        "configurations": results,
        "ratios": _ratios(results, reference),
    }


def train_step(
    model: FusionModel,
    batch: int,
    settings: Settings,
    runnable: Callable | None = None,
    img_size: int = 224,
) -> Callable[[], None]:
    """A closure running one optimisation step on a fixed random batch (data loading excluded).

    ``runnable`` is what computes the forward pass (``torch.compile(model)``); ``model`` by default.
    """
    runnable = model if runnable is None else runnable
    images = settings.images(batch, img_size)
    labels = random_labels(model, batch, settings.device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with settings.autocast():
            output = runnable(primary=images, auxiliary=images)
        loss, _ = multitask_loss(output.logits, labels, model.tasks)
        loss.backward()
        optimizer.step()

    return step


def _ratios(results: dict[str, dict], reference: str) -> dict[str, float]:
    """Throughput of each configuration over the reference's, in the same mode (eager or compiled)."""
    if reference not in results:
        return {}
    return {
        f"{name}/{mode}": round(entry["pairs_per_s"] / results[reference][mode]["pairs_per_s"], 4)
        for name, modes in results.items()
        if name != reference
        for mode, entry in modes.items()
    }
