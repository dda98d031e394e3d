"""``mmfuse reproduce`` with timm's tiny backbones: what the reproduce tests run, in-process or as a process.

Test-only: ``python tests/reproduce_tiny.py EPOCHS -- reproduce arguments...`` runs the CLI with
:func:`tiny_quick` as the ``--quick`` recipe, so a test can SIGKILL a real ``mmfuse reproduce`` that takes
seconds. The product has no such hook.
"""

from __future__ import annotations

import copy
import sys


def tiny_quick(epochs: int = 1) -> dict:
    """The ``--quick`` recipe with tiny stand-ins for Swin-T and MobileNetV3: a run trains in seconds."""
    from mmfuse import reproduce

    quick = copy.deepcopy(reproduce.QUICK)
    quick["model"] = {
        "pretrained": False,
        "primary": "test_convnext",
        "auxiliary": "test_efficientnet",
        "img_size": 32,
    }
    quick["train"].update(epochs=epochs, swa={"epochs": 0, "anneal_epochs": 1})
    quick["evaluation"]["tta"] = ["identity"]
    return quick


def main() -> int:
    from mmfuse import reproduce
    from mmfuse.cli import main as cli

    epochs = int(sys.argv[1])
    reproduce.QUICK = tiny_quick(epochs)
    return cli(["reproduce", *sys.argv[sys.argv.index("--") + 1 :]])


if __name__ == "__main__":
    raise SystemExit(main())
