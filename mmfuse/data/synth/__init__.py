"""Synthetic releases in the real datasets' layouts, for tests, the demo and pipeline checks.

``derm7pt`` writes a Derm7pt release (labels drawn from the real metadata's statistics), ``milk10k`` a
MILK10k one, both drawing their lesions with ``render``; ``marker`` is how a synthetic release is
recognised. The generators load on first use, so reading the marker imports no image code.
"""

from mmfuse._lazy import lazy_exports

_LAZY = {"synthesize": "mmfuse.data.synth.derm7pt", "synthesize_milk10k": "mmfuse.data.synth.milk10k"}

__getattr__, __dir__ = lazy_exports(globals(), _LAZY)

__all__ = ["synthesize", "synthesize_milk10k"]
