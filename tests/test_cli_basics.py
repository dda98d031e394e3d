"""Small command-line behaviours a user meets first: --version, and output piped into `head`."""

from __future__ import annotations

import os
import subprocess
import sys

from test_training_fixtures import make_release

import mmfuse
from mmfuse.cli import main


def test_version(capsys):
    try:
        main(["--version"])
    except SystemExit as exit:
        assert exit.code == 0
    assert capsys.readouterr().out.strip() == f"mmfuse {mmfuse.__version__}"


def test_output_into_a_closed_pipe_ends_quietly(tmp_path):
    """`mmfuse data stats ... | head`: no BrokenPipeError traceback when the reader has gone."""
    release = make_release(tmp_path / "release", cases=20)
    read, write = os.pipe()
    os.close(read)  # the reader is gone before anything is written: every write fails with EPIPE
    try:
        done = subprocess.run(
            [sys.executable, "-m", "mmfuse", "data", "stats", "derm7pt", str(release)],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            check=False,
        )
    finally:
        os.close(write)
    assert "Traceback" not in done.stderr and "BrokenPipeError" not in done.stderr, done.stderr
    assert done.returncode == 141
