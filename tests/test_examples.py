"""The runnable examples in examples/ run, and `python -m mmfuse` is the `mmfuse` console script."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.parametrize(
    "script", ["quickstart.py", "custom_fusion.py", "finetune.py", "fusionm4net_second_stage.py"]
)
def test_example_runs(script):
    result = subprocess.run(
        [sys.executable, str(REPO / "examples" / script)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()


def test_module_and_console_script_are_the_same_cli():
    script = shutil.which("mmfuse", path=str(Path(sys.executable).parent))
    assert script is not None, "the mmfuse console script is not installed next to this Python"
    as_module = subprocess.run(
        [sys.executable, "-m", "mmfuse", "--help"], capture_output=True, text=True, check=True
    )
    as_script = subprocess.run([script, "--help"], capture_output=True, text=True, check=True)
    assert as_module.stdout.replace("__main__.py", "mmfuse") == as_script.stdout
    assert "params" in as_script.stdout
