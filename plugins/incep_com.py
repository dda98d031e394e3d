"""Inception-combined (Kawahara et al., 2019, the Derm7pt paper): two Inception-v3, late fusion with
the patient metadata.

Each image has its own Inception-v3 (299 px) and per-task classifiers; the combined classifier reads
the concatenation of both pooled vectors and the one-hot metadata (the ``concat`` combiner with the
``identity`` metadata encoder). No interaction happens inside the backbones (``concat`` fusion).

This is our reading of the paper (its code is not public). The metadata are the patient's record —
elevation, location and sex, 14 one-hot values — not the two fields Derm7pt's clinicians filled in
knowing the diagnosis (difficulty, management), which FusionM4Net's and TFormer's code also use.
"""

from __future__ import annotations

import mmfuse
from mmfuse.data.formats.derm7pt import METADATA_FIELDS
from mmfuse.metadata import EncodedField, MetadataEncoding

RECORD_FIELDS = ("elevation", "location", "sex")

INCEP_COM_PRESET = {
    "primary": "inception_v3",
    "auxiliary": "inception_v3",
    "fusion": "concat",
    "img_size": 299,
    "combiner": "concat",
    "metadata": MetadataEncoding(
        [
            EncodedField(f.name, "categorical", f.categories)
            for f in METADATA_FIELDS
            if f.name in RECORD_FIELDS
        ]
    ).to_dict(),
    "metadata_encoder": "identity",
}


@mmfuse.hookimpl
def register_presets(register) -> None:
    register("incep-com", dict(INCEP_COM_PRESET))
