"""Run the mmfuse CLI with one kind of write slowed down, so a test can SIGKILL the process mid-write.

Test-only: ``python tests/slow_writes.py KIND MARKER -- mmfuse arguments...``. KIND is ``checkpoint``
(the first tensor file of each checkpoint is written, then the process sleeps inside the write) or
``model`` (the final ``model.safetensors`` is half written, then the process sleeps). MARKER is a file
created when the slow write has begun, for the test to wait on. The product has no such hook.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path


def _pause(marker: Path, note: str) -> None:
    marker.write_text(note)
    time.sleep(600)  # the test kills the process here


def main() -> int:
    kind, marker = sys.argv[1], Path(sys.argv[2])
    argv = sys.argv[sys.argv.index("--") + 1 :]
    if kind == "checkpoint":
        from mmfuse.training import checkpoint

        real = checkpoint.save_file

        def slow_save_file(tensors, filename, *args, **kwargs):
            real(tensors, filename, *args, **kwargs)
            _pause(marker, str(filename))

        checkpoint.save_file = slow_save_file
    elif kind == "model":
        import safetensors.torch

        def half_save_model(model, filename, *args, **kwargs):
            Path(filename).write_bytes(b"\x00" * 1000)
            _pause(marker, str(filename))

        safetensors.torch.save_model = half_save_model
    else:
        raise SystemExit(f"unknown kind {kind!r}")
    from mmfuse.cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    raise SystemExit(main())
