"""Parameter counts of the paper's configurations, ours beside the paper's (Tables 6, 7, 9, 10).

The paper's counts come from its unpublished code, so absolute numbers differ (see docs/architecture.md);
the ratios between configurations are what the report is for.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from mmfuse.model import FusionModel
from mmfuse.presets import MOBILENET, SWIN, resolve_config


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@dataclass(frozen=True)
class PaperConfiguration:
    """A row of the paper's parameter tables: how to build it here and what the paper reports."""

    name: str
    tables: str
    paper_millions: float
    preset: str | None = None
    overrides: dict = field(default_factory=dict)
    single_encoder: str | None = None  # single-modal rows: one encoder and one head


PAPER_CONFIGURATIONS: tuple[PaperConfiguration, ...] = (
    PaperConfiguration("ammfm-swin", "6, 7, 9, 10", 33.06, "ammfm-swin"),
    PaperConfiguration("aff-concat-swin", "6, 9", 32.48, "ammfm-swin", {"fusion": "concat"}),
    PaperConfiguration("aff-bab-swin", "9", 33.88, "ammfm-swin", {"fusion": "bab"}),
    PaperConfiguration("baseline-swin", "6, 7, 9, 10", 58.49, "baseline-swin"),
    PaperConfiguration("sff-aab-swin", "9", 59.09, "baseline-swin", {"fusion": "aab"}),
    PaperConfiguration("sff-bab-swin", "9", 60.45, "baseline-swin", {"fusion": "bab"}),
    PaperConfiguration(
        "baseline-mobilenet", "7", 6.48, "baseline-swin", {"primary": MOBILENET, "auxiliary": MOBILENET}
    ),
    PaperConfiguration("ammfm-swapped", "7", 32.62, "ammfm-swin", {"primary": MOBILENET, "auxiliary": SWIN}),
    PaperConfiguration("single-swin", "7, 10", 28.82, single_encoder=SWIN),
    PaperConfiguration("single-mobilenet", "7", 2.91, single_encoder=MOBILENET),
    PaperConfiguration("ammfm-resnet", "10", 36.36, "ammfm-resnet"),
    PaperConfiguration("baseline-resnet", "10", 55.52, "baseline-resnet"),
    PaperConfiguration("single-resnet", "10", 26.68, single_encoder="resnet50"),
    PaperConfiguration("ammfm-convnext", "10", 33.29, "ammfm-convnext"),
    PaperConfiguration("baseline-convnext", "10", 58.96, "baseline-convnext"),
    PaperConfiguration("single-convnext", "10", 29.05, single_encoder="convnext_tiny"),
)


def configuration_parameters(config: PaperConfiguration, img_size: int = 224) -> int:
    """Our parameter count for one configuration (backbones built with ``pretrained=False``)."""
    from mmfuse.model import FusionModel
    from mmfuse.registry import create_encoder, create_head
    from mmfuse.tasks import resolve_tasks

    if config.single_encoder is not None:
        encoder = create_encoder(config.single_encoder, img_size=img_size)
        head = create_head("linear", encoder.channels[-1], resolve_tasks("derm7pt"))
        return count_parameters(encoder) + count_parameters(head)
    return count_parameters(FusionModel(resolve_config(config.preset, img_size=img_size, **config.overrides)))


def parameter_report(img_size: int = 224) -> list[dict]:
    """One row per paper configuration: ``name``, ``tables``, ``params`` (ours), ``paper_params``."""
    return [
        {
            "name": c.name,
            "tables": c.tables,
            "params": configuration_parameters(c, img_size),
            "paper_params": round(c.paper_millions * 1e6),
        }
        for c in PAPER_CONFIGURATIONS
    ]


@dataclass(frozen=True)
class PeerConfiguration:
    """A method of the paper's Table 5, built from its preset, beside the count the paper gives.

    ``bound`` is ``"="`` for counts from the authors' code, ``">"`` / ``"≫"`` for the paper's estimates;
    ``reference_unused`` counts parameters the reference code builds but never uses (and so counts).
    """

    name: str
    paper_millions: float
    bound: str
    note: str
    reference_unused: int = 0


PEER_CONFIGURATIONS: tuple[PeerConfiguration, ...] = (
    PeerConfiguration(
        "fusionm4net",
        54.45,
        "=",
        "reference keeps both torchvision ResNet-50 1000-class fc layers (2 x 2,049,000, unused)",
        reference_unused=2 * 2_049_000,
    ),
    PeerConfiguration(
        "tformer",
        77.76,
        "=",
        "+2 linear heads (37k) mmfuse trains; reference's unused Swin classifier (769k) not built",
    ),
    PeerConfiguration(
        "cafnet", 51.2, "≫", "paper's estimate: 2 x ResNet-50 plus attention; ours: BAB at 4 stages"
    ),
    PeerConfiguration(
        "incep-com", 57.4, ">", "paper's estimate counts 2 x torchvision Inception-v3 with aux/fc heads"
    ),
)


def peer_report(img_size: int | None = None) -> list[dict]:
    """One row per Table 5 method: ``params`` (ours), ``paper_params``, ``paper_bound``, ``reference_params``."""
    rows = []
    for c in PEER_CONFIGURATIONS:
        overrides = {} if img_size is None else {"img_size": img_size}
        params = count_parameters(FusionModel(resolve_config(c.name, **overrides)))
        rows.append(
            {
                "name": c.name,
                "tables": "5",
                "params": params,
                "paper_params": round(c.paper_millions * 1e6),
                "paper_bound": c.bound,
                "reference_params": params + c.reference_unused,
                "note": c.note,
            }
        )
    return rows


def format_peer_report(rows: list[dict]) -> str:
    lines = [
        f"{'peer (Table 5)':<14} {'ours (M)':>9} {'paper (M)':>11} {'ours/paper':>10} {'as reference (M)':>17}  note"
    ]
    for r in rows:
        exact = r["paper_bound"] == "="
        paper = f"{'' if exact else r['paper_bound'] + ' '}{r['paper_params'] / 1e6:.2f}"
        ratio = f"{r['params'] / r['paper_params']:.3f}" if exact else "-"
        reference = (
            f"{r['reference_params'] / 1e6:.2f} ({r['reference_params'] / r['paper_params']:.3f})"
            if exact and r["reference_params"] != r["params"]
            else ""
        )
        lines.append(
            f"{r['name']:<14} {r['params'] / 1e6:>9.2f} {paper:>11} {ratio:>10} {reference:>17}  {r['note']}"
        )
    return "\n".join(lines)


def format_report(rows: list[dict]) -> str:
    peers = [r for r in rows if "paper_bound" in r]
    rows = [r for r in rows if "paper_bound" not in r]
    lines = [f"{'configuration':<20} {'tables':<12} {'ours (M)':>9} {'paper (M)':>10} {'ours/paper':>10}"]
    for r in rows:
        lines.append(
            f"{r['name']:<20} {r['tables']:<12} {r['params'] / 1e6:>9.2f} {r['paper_params'] / 1e6:>10.2f}"
            f" {r['params'] / r['paper_params']:>10.3f}"
        )
    by_name = {r["name"]: r["params"] for r in rows}
    lines.append("")
    lines.append(
        f"ammfm-swin / baseline-swin = {by_name['ammfm-swin'] / by_name['baseline-swin']:.3f} (paper 0.565); "
        f"aab over concat (asymmetric) = {by_name['ammfm-swin'] / by_name['aff-concat-swin'] - 1:+.2%} (paper +1.8%)"
    )
    if peers:
        lines += ["", format_peer_report(peers)]
    return "\n".join(lines)
