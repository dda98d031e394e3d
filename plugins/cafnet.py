"""CAFNet (He et al., 2023) as the AMMFM paper estimates it (Table 5): bidirectional attention (BAB) between
two ResNet-50, symmetric, at every stage.

CAFNet's code is not public. The AMMFM paper identifies its cross-attention with BAB (Fig. 3a) and
counts it as two ResNet-50 plus attention blocks ("≫ 51.2 M"); this preset builds exactly that frame
from mmfuse's own ``bab`` block at all four ResNet stages, keys and values pooled to at most 196
positions (``max_key_tokens``, as the other attention presets). It is an estimate of the design, not a
reimplementation of the paper's network.
"""

from __future__ import annotations

import mmfuse

CAFNET_PRESET = {
    "primary": "resnet50",
    "auxiliary": "resnet50",
    "fusion": "bab",
    "fusion_stages": "all",
    "fusion_options": {"max_key_tokens": 196},
}


@mmfuse.hookimpl
def register_presets(register) -> None:
    register("cafnet", dict(CAFNET_PRESET))
