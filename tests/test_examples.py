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


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_setup_installs_torch_from_torch_index_with_a_fallback(tmp_path):
    """``make setup TORCH_INDEX=URL`` tries that index first and goes on with the default install."""

    def plan(*variables: str) -> list[str]:
        # -B: plan the setup even where the venv exists; -n: print the commands, run nothing
        command = ["make", "-nB", "setup", f"VENV={tmp_path / 'venv'}", *variables]
        return subprocess.run(
            command, cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.splitlines()

    cpu = plan("TORCH_INDEX=https://download.pytorch.org/whl/cpu")
    index = next(i for i, line in enumerate(cpu) if "--index-url" in line)
    assert "'https://download.pytorch.org/whl/cpu'" in cpu[index] and "|| echo" in cpu[index]
    assert any("install -e '.[" in line for line in cpu[index + 1 :])  # the default install follows
    assert not any("--index-url" in line for line in plan())
