"""How a synthetic release is recognised: the generators write ``SYNTHETIC.json`` (generator, cases, size,
seed) at its root, so a model card or a report can say that its numbers come from drawn images."""

from __future__ import annotations

import os
from pathlib import Path

SYNTHETIC_MARKER = "SYNTHETIC.json"


def is_synthetic(root: str | os.PathLike) -> bool:
    """Whether the release at ``root`` was written by ``mmfuse data synth`` (or the demo)."""
    return (Path(root) / SYNTHETIC_MARKER).is_file()
