"""TFormer's reference logits for a seeded small configuration, and the weights both sides share.

Test-only. ``python tests/tformer_reference.py REFERENCE_CHECKOUT`` imports the authors' code from a
checkout of github.com/zylbuaa/TFormer (it is never part of this repository; it needs ``yacs``), builds
``models.TFormer.TFormer`` with Swin depths :data:`SWIN_DEPTHS`, fills every parameter with
:func:`reference_value` of its name, runs the seeded inputs of :func:`reference_inputs` in eval mode and
writes its eight classifiers' logits to :data:`FIXTURE` with the command and the checkout's commit.
``tests/test_tformer_reference.py`` fills our ``tformer`` preset with the same values (through a
name map) and must reproduce those logits.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import zlib
from pathlib import Path

import torch

FIXTURE = Path(__file__).parent / "data" / "tformer_reference_logits.json"
SWIN_DEPTHS = (1, 1, 2, 1)  # Swin-T is (2, 2, 6, 2); 2 blocks at 14² keep one shifted window
BATCH = 2
# The reference's classifiers, in the order its forward returns them (diagnosis, then the 7-point criteria).
REFERENCE_HEADS = ("fc_diag", "fc_pn", "fc_bwn", "fc_vs", "fc_pig", "fc_str", "fc_dag", "fc_rs")
METADATA_SIZE = 20


def reference_value(name: str, shape: tuple[int, ...]) -> torch.Tensor:
    """A parameter's value from the reference's name alone, so both models get the same weights."""
    x = torch.randn(shape, generator=torch.Generator().manual_seed(zlib.crc32(name.encode())))
    if name.endswith("relative_position_bias_table"):
        return 0.5 * x
    if len(shape) >= 2:
        return x / math.sqrt(math.prod(shape[1:]))
    return 1 + 0.1 * x if name.endswith("weight") else 0.1 * x  # 1-D weights are norms' scales


def reference_inputs() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(metadata, clinical, dermoscopy)``: a 0/1 metadata vector and two 224² images."""
    generator = torch.Generator().manual_seed(0)
    metadata = (torch.rand(BATCH, METADATA_SIZE, generator=generator) > 0.5).float()
    clinical = torch.randn(BATCH, 3, 224, 224, generator=generator)
    dermoscopy = torch.randn(BATCH, 3, 224, 224, generator=generator)
    return metadata, clinical, dermoscopy


def main(checkout: str) -> None:
    sys.path.insert(0, checkout)
    import models.TFormer as reference  # noqa: PLC0415 - the authors' code, from the given checkout
    from models.swin_transformer.config import _C as swin_config  # noqa: PLC0415

    swin_config.defrost()
    swin_config.MODEL.SWIN.DEPTHS = list(SWIN_DEPTHS)
    reference.load_pretrained = lambda config, model: None  # random weights: nothing to load
    torch.manual_seed(0)
    model = reference.TFormer(num_classes=5).eval()
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            parameter.copy_(reference_value(name, tuple(parameter.shape)))
        metadata, clinical, dermoscopy = reference_inputs()
        outputs = model(metadata, clinical, dermoscopy)
    commit = subprocess.run(
        ["git", "-C", checkout, "rev-parse", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    FIXTURE.parent.mkdir(exist_ok=True)
    record = {
        "reference": "https://github.com/zylbuaa/TFormer",
        "commit": commit or "unknown (not a git checkout)",
        "command": "python tests/tformer_reference.py REFERENCE_CHECKOUT",
        "torch": torch.__version__,
        "swin_depths": list(SWIN_DEPTHS),
        "parameters": {name: list(p.shape) for name, p in model.named_parameters()},
        "logits": {head: out.tolist() for head, out in zip(REFERENCE_HEADS, outputs, strict=True)},
    }
    FIXTURE.write_text(json.dumps(record) + "\n")
    print(f"wrote {FIXTURE}: {outputs[0]}")


if __name__ == "__main__":
    main(sys.argv[1])
