"""Inception-combined (Kawahara et al., 2019, the Derm7pt paper): two Inception-v3, late fusion with
the patient metadata.

Each image has its own Inception-v3 (299 px) and per-task classifiers; the combined classifier reads
the concatenation of both pooled vectors and the one-hot metadata (the ``concat`` combiner with the
``identity`` metadata encoder). No interaction happens inside the backbones (``concat`` fusion).
"""

from __future__ import annotations

import mmfuse
from mmfuse.data.derm7pt import official_metadata_encoding

INCEP_COM_PRESET = {
    "primary": "inception_v3",
    "auxiliary": "inception_v3",
    "fusion": "concat",
    "img_size": 299,
    "combiner": "concat",
    "metadata": official_metadata_encoding().to_dict(),
    "metadata_encoder": "identity",
}


@mmfuse.hookimpl
def register_presets(register) -> None:
    register("incep-com", dict(INCEP_COM_PRESET))
