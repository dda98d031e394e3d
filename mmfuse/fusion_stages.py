"""Where the fusion blocks sit: which primary stages fuse, and the auxiliary stage each one pairs with.

Plain arithmetic on the encoders' stage reductions (input size over map size), so that the placement the
paper implies can be read and tested apart from the modules it places.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from mmfuse.errors import UsageError

PAPER_FUSION_REDUCTIONS = (4, 8, 16)


def default_fusion_stages(reductions: Sequence[int]) -> list[int]:
    """The paper's placement: after each of the primary's first three stages (reductions 4, 8, 16).

    Section 3.2 embeds AABs "into different stages"; Tables 6 and 9 size them (SFF+AAB minus SFF+CAT =
    0.60 M), which only the first three stages of Swin-T match (0.58 M; one stage: 0.44 M, four: 2.35 M).
    A backbone without those reductions fuses its deepest stage.
    """
    stages = [i for i, r in enumerate(reductions) if r in PAPER_FUSION_REDUCTIONS]
    return stages or [len(reductions) - 1]


def resolve_fusion_stages(requested: Sequence[int] | str | None, reductions: Sequence[int]) -> list[int]:
    """The primary stages that fuse, sorted: ``None`` is the paper's choice, ``"all"`` every stage.

    ``reductions`` are the primary encoder's, one per stage; negative stage numbers count from the end.
    """
    num_stages = len(reductions)
    if requested is None:
        stages = default_fusion_stages(reductions)
    elif requested == "all":
        stages = list(range(num_stages))
    else:
        stages = requested
    for s in stages:
        if not -num_stages <= s < num_stages:
            raise UsageError(
                f"fusion stage {s} is out of range for a primary encoder with {num_stages} stages"
            )
    return sorted({s % num_stages for s in stages})


def match_stage(stage: int, reduction: int, reductions: Sequence[int]) -> int:
    """Index of the auxiliary stage whose reduction is nearest (in log scale) to ``reduction``.

    ``stage`` is the primary stage being paired. Ties go to the auxiliary stage nearest that depth (the
    same stage of an encoder with repeated reductions, e.g. a Swin cut after its last patch merging and
    again after its last blocks, reductions [4, 8, 16, 32, 32]); then to the deeper one.
    """
    return min(
        range(len(reductions)),
        key=lambda i: (abs(math.log2(reductions[i] / reduction)), abs(i - stage), -i),
    )


def fusion_pairs(
    stages: Sequence[int], primary_reductions: Sequence[int], auxiliary_reductions: Sequence[int]
) -> dict[int, int]:
    """``{primary stage: auxiliary stage}`` for each fused primary stage (see :func:`match_stage`)."""
    return {s: match_stage(s, primary_reductions[s], auxiliary_reductions) for s in stages}
