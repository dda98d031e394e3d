"""Parameter counts of the paper's configurations, ours beside the paper's (Tables 5-7, 9, 10).

The paper's counts come from its unpublished code, so absolute numbers differ (see docs/architecture.md);
the deltas over each row's concat counterpart (the fusion blocks' own size) are comparable directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from mmfuse.model import FusionNetwork
from mmfuse.presets import CONVNEXT, MOBILENET, RESNET, SWIN, resolve_config
from mmfuse.progress import Steps


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@dataclass(frozen=True)
class PaperConfiguration:
    """A row of the paper's tables: how to build it here, what the paper reports, its concat counterpart.

    ``concat`` names the row with the same encoders fused by concatenation only; the parameter delta over
    it is the fusion blocks' size, comparable with the paper's even where backbone counts differ.
    ``paper_millions`` is ``None`` for rows the paper does not list (our concat counterparts).
    """

    name: str
    tables: str
    paper_millions: float | None
    preset: str
    overrides: dict = field(default_factory=dict)
    concat: str | None = None

    def config(self, img_size: int | None = None) -> dict:
        """The resolved model config of this row (``img_size`` overrides the backbone input size)."""
        return resolve_config(self.preset, **self.overrides, img_size=img_size)


def _single(branch: str, encoder: str) -> dict:
    return {"modalities": [branch], branch: encoder}


PAPER_CONFIGURATIONS: tuple[PaperConfiguration, ...] = (
    PaperConfiguration("ammfm-swin", "6, 7, 9, 10", 33.06, "ammfm-swin", concat="aff-concat-swin"),
    PaperConfiguration("aff-concat-swin", "6, 9", 32.48, "ammfm-swin", {"fusion": "concat"}),
    PaperConfiguration("aff-bab-swin", "9", 33.88, "ammfm-swin", {"fusion": "bab"}, concat="aff-concat-swin"),
    PaperConfiguration("baseline-swin", "6, 7, 9, 10", 58.49, "baseline-swin"),
    PaperConfiguration(
        "sff-aab-swin", "9", 59.09, "baseline-swin", {"fusion": "aab"}, concat="baseline-swin"
    ),
    PaperConfiguration(
        "sff-bab-swin", "9", 60.45, "baseline-swin", {"fusion": "bab"}, concat="baseline-swin"
    ),
    PaperConfiguration(
        "baseline-mobilenet", "7", 6.48, "baseline-swin", {"primary": MOBILENET, "auxiliary": MOBILENET}
    ),
    PaperConfiguration(
        "ammfm-swapped",
        "7",
        32.62,
        "ammfm-swin",
        {"primary": MOBILENET, "auxiliary": SWIN},
        concat="aff-concat-swin",
    ),
    PaperConfiguration("single-swin-derm", "7, 8, 10", 28.82, "ammfm-swin", _single("primary", SWIN)),
    PaperConfiguration("single-swin-clin", "7, 8, 10", 28.82, "ammfm-swin", _single("auxiliary", SWIN)),
    PaperConfiguration("single-mobilenet-derm", "7", 2.91, "ammfm-swin", _single("primary", MOBILENET)),
    PaperConfiguration("single-mobilenet-clin", "7", 2.91, "ammfm-swin", _single("auxiliary", MOBILENET)),
    PaperConfiguration("ammfm-resnet", "10", 36.36, "ammfm-resnet", concat="aff-concat-resnet"),
    PaperConfiguration("aff-concat-resnet", "-", None, "ammfm-resnet", {"fusion": "concat"}),
    PaperConfiguration("baseline-resnet", "10", 55.52, "baseline-resnet"),
    PaperConfiguration("single-resnet-derm", "10", 26.68, "ammfm-resnet", _single("primary", RESNET)),
    PaperConfiguration("single-resnet-clin", "10", 26.68, "ammfm-resnet", _single("auxiliary", RESNET)),
    PaperConfiguration("ammfm-convnext", "10", 33.29, "ammfm-convnext", concat="aff-concat-convnext"),
    PaperConfiguration("aff-concat-convnext", "-", None, "ammfm-convnext", {"fusion": "concat"}),
    PaperConfiguration("baseline-convnext", "10", 58.96, "baseline-convnext"),
    PaperConfiguration("single-convnext-derm", "10", 29.05, "ammfm-convnext", _single("primary", CONVNEXT)),
    PaperConfiguration("single-convnext-clin", "10", 29.05, "ammfm-convnext", _single("auxiliary", CONVNEXT)),
    # This project's faster configurations (not in the paper): beside the paper's rows for their cost.
    PaperConfiguration("ammfm-swin-fast", "ours", None, "ammfm-swin-fast", concat="aff-concat-swin"),
    PaperConfiguration("ammfm-resnet-fast", "ours", None, "ammfm-resnet-fast", concat="aff-concat-resnet"),
    PaperConfiguration(
        "ammfm-convnext-fast", "ours", None, "ammfm-convnext-fast", concat="aff-concat-convnext"
    ),
    # The other reading of the paper's AAB width (docs/architecture.md): its Δ over concat is the AAB at the
    # primary width (the paper's 0.58 M) plus the auxiliary projection, reported apart as ``projection``.
    PaperConfiguration(
        "ammfm-swin-projected", "ours", None, "ammfm-swin-projected", concat="aff-concat-swin"
    ),
)

CONFIGURATIONS_BY_NAME = {c.name: c for c in PAPER_CONFIGURATIONS}


def _projection_parameters(model: nn.Module) -> int:
    """Parameters of the fusion blocks' auxiliary projections (``auxiliary_projection: true``)."""
    blocks = getattr(model, "fusion_blocks", {})
    return sum(count_parameters(b.projection) for b in blocks.values() if getattr(b, "projection", None))


def parameter_report(img_size: int = 224, *, steps: Steps | None = None) -> list[dict]:
    """One row per configuration: ``name``, ``tables``, ``params`` (ours), ``paper_params`` (or ``None``),
    ``concat`` and the deltas over it, ``delta`` (ours) and ``paper_delta``. ``steps`` counts each
    model built (:func:`report_steps`)."""
    rows = []
    for c in PAPER_CONFIGURATIONS:
        model = FusionNetwork(c.config(img_size))
        row = {
            "name": c.name,
            "tables": c.tables,
            "params": count_parameters(model),
            "paper_params": None if c.paper_millions is None else round(c.paper_millions * 1e6),
            "concat": c.concat,
        }
        projection = _projection_parameters(model)
        if projection:
            row["projection"] = projection
        rows.append(row)
        if steps is not None:
            steps.step(c.name)
    by_name = {r["name"]: r for r in rows}
    for r in rows:
        base = by_name.get(r["concat"]) if r["concat"] else None
        r["delta"] = None if base is None else r["params"] - base["params"]
        known = base is not None and r["paper_params"] is not None and base["paper_params"] is not None
        r["paper_delta"] = r["paper_params"] - base["paper_params"] if known else None
    return rows


@dataclass(frozen=True)
class PeerConfiguration:
    """A method of the paper's Table 5, built from its preset, beside the count the paper gives.

    ``bound`` is ``"="`` for counts from the authors' code, ``">"`` / ``"≫"`` for the paper's estimates;
    ``reference_unused`` counts parameters the reference code builds but never uses (and so counts);
    ``reference_branch_heads`` is False where the reference has no primary and auxiliary heads (mmfuse
    always trains three), so the reference's count leaves ours out.
    """

    name: str
    paper_millions: float
    bound: str
    note: str
    reference_unused: int = 0
    reference_branch_heads: bool = True


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
        "reference = ours - the 2 branch heads mmfuse trains (36,912) + its unused Swin classifier, "
        "Linear(768, 128) as its config sets 128 classes (98,432), not built here",
        reference_unused=768 * 128 + 128,
        reference_branch_heads=False,
    ),
    PeerConfiguration(
        "cafnet", 51.2, "≫", "paper's estimate: 2 x ResNet-50 plus attention; ours: BAB at 4 stages"
    ),
    PeerConfiguration(
        "incep-com",
        57.4,
        ">",
        "no code to count; 57.4 M cannot be derived: 2 x torchvision Inception-v3 with aux and 1000-class "
        "heads is 54.32 M, without them 43.57 M",
    ),
)


def peer_report(img_size: int | None = None, *, steps: Steps | None = None) -> list[dict]:
    """One row per Table 5 method: ``params`` (ours), ``paper_params``, ``paper_bound``, ``reference_params``."""
    rows = []
    for c in PEER_CONFIGURATIONS:
        overrides = {} if img_size is None else {"img_size": img_size}
        model = FusionNetwork(resolve_config(c.name, **overrides))
        params = count_parameters(model)
        reference = params + c.reference_unused
        if not c.reference_branch_heads:
            reference -= count_parameters(model.heads["primary"]) + count_parameters(model.heads["auxiliary"])
        if steps is not None:
            steps.step(c.name)
        rows.append(
            {
                "name": c.name,
                "tables": "5",
                "params": params,
                "paper_params": round(c.paper_millions * 1e6),
                "paper_bound": c.bound,
                "reference_params": reference,
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


def _millions(value: int | None, width: int, sign: bool = False) -> str:
    if value is None:
        return f"{'-':>{width}}"
    return f"{value / 1e6:>+{width}.2f}" if sign else f"{value / 1e6:>{width}.2f}"


def format_report(rows: list[dict]) -> str:
    peers = [r for r in rows if "paper_bound" in r]
    rows = [r for r in rows if "paper_bound" not in r]
    lines = [
        f"{'configuration':<22} {'tables':<11} {'ours (M)':>9} {'paper (M)':>10} {'ours/paper':>10}"
        f"  {'over concat':<19} {'Δ ours':>7} {'Δ paper':>8} {'Δ ours/paper':>12}"
    ]
    for r in rows:
        paper = r["paper_params"]
        ratio = f"{r['params'] / paper:>10.3f}" if paper else f"{'-':>10}"
        delta_ratio = (
            f"{r['delta'] / r['paper_delta']:>12.3f}"
            if r.get("delta") is not None and r.get("paper_delta")
            else f"{'-':>12}"
        )
        lines.append(
            f"{r['name']:<22} {r['tables']:<11} {_millions(r['params'], 9)} {_millions(paper, 10)} {ratio}"
            f"  {r.get('concat') or '-':<19} {_millions(r.get('delta'), 7, True)} {_millions(r.get('paper_delta'), 8, True)}"
            f" {delta_ratio}"
        )
    by_name = {r["name"]: r["params"] for r in rows}
    lines.append("")
    lines.append(
        f"ammfm-swin / baseline-swin = {by_name['ammfm-swin'] / by_name['baseline-swin']:.3f} (paper 0.565); "
        f"aab over concat (asymmetric) = {by_name['ammfm-swin'] / by_name['aff-concat-swin'] - 1:+.2%} (paper +1.8%)"
    )
    for r in rows:
        if r.get("projection") and r.get("delta") is not None:
            lines.append(
                f"{r['name']}: Δ = AAB at the primary width {r['delta'] - r['projection']:,} "
                f"+ auxiliary projection {r['projection']:,} (paper's AAB: 0.58 M)"
            )
    if peers:
        lines += ["", format_peer_report(peers)]
    return "\n".join(lines)
