"""The paper's presets (AMMFM, its faster variants and the symmetric baselines) as a built-in plugin.

They reach the registry through the same ``register_presets`` hook as the peers' (``fusionm4net``,
``tformer``...) and a third party's, so :func:`mmfuse.list_presets` is one registry and a plugin that
registers ``ammfm-swin`` again is refused unless it passes ``override=True``.
"""

from __future__ import annotations

import mmfuse
from mmfuse.presets import CONVNEXT, MOBILENET, RESNET, SWIN

# The fast configuration's attention: keys and values pooled to at most 196 positions per map.
FAST_FUSION_OPTIONS = {"max_key_tokens": 196}

AMMFM_PRESETS: dict[str, dict] = {
    # AMMFM as the paper builds it (Tables 6, 7, 10): a light auxiliary encoder, a heavy primary one, an
    # asymmetric attention block after each of the primary's first three stages (reductions 4, 8, 16),
    # exact Eq. 1 over every position.
    "ammfm-swin": {"primary": SWIN, "auxiliary": MOBILENET, "fusion": "aab", "fusion_stages": [0, 1, 2]},
    # The other reading of Sec. 3.2's AAB (C and D both H×W×C): the auxiliary map projected to the
    # primary width before the block, whose 1×1 convolutions then all act at that width (the paper's
    # 0.58 M). Not the default: see docs/architecture.md.
    "ammfm-swin-projected": {
        "primary": SWIN,
        "auxiliary": MOBILENET,
        "fusion": "aab",
        "fusion_stages": [0, 1, 2],
        "fusion_options": {"auxiliary_projection": True},
    },
    "ammfm-resnet": {"primary": RESNET, "auxiliary": MOBILENET, "fusion": "aab", "fusion_stages": [1, 2, 3]},
    "ammfm-convnext": {
        "primary": CONVNEXT,
        "auxiliary": MOBILENET,
        "fusion": "aab",
        "fusion_stages": [0, 1, 2],
    },
    # This project's faster configuration (not the paper's): one block at reduction 16, keys pooled to 196.
    "ammfm-swin-fast": {
        "primary": SWIN,
        "auxiliary": MOBILENET,
        "fusion": "aab",
        "fusion_stages": [2],
        "fusion_options": FAST_FUSION_OPTIONS,
    },
    "ammfm-resnet-fast": {
        "primary": RESNET,
        "auxiliary": MOBILENET,
        "fusion": "aab",
        "fusion_stages": [3],
        "fusion_options": FAST_FUSION_OPTIONS,
    },
    "ammfm-convnext-fast": {
        "primary": CONVNEXT,
        "auxiliary": MOBILENET,
        "fusion": "aab",
        "fusion_stages": [2],
        "fusion_options": FAST_FUSION_OPTIONS,
    },
    # The symmetric baselines: the same backbone twice, fused only by the concatenating head.
    "baseline-swin": {"primary": SWIN, "auxiliary": SWIN, "fusion": "concat"},
    "baseline-resnet": {"primary": RESNET, "auxiliary": RESNET, "fusion": "concat"},
    "baseline-convnext": {"primary": CONVNEXT, "auxiliary": CONVNEXT, "fusion": "concat"},
}


@mmfuse.hookimpl
def register_presets(register) -> None:
    for name, config in AMMFM_PRESETS.items():
        register(name, config)
