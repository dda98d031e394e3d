"""Small command-line behaviours a user meets first: --version, and output piped into `head`."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
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


def test_help_and_argument_errors_load_no_heavy_package():
    """`mmfuse --help` took 3 s when the package imported torch at start-up: help and argument errors must
    not load torch, timm, numpy or Gradio. How fast they answer is measured by `python -m
    benchmarks.cli_startup` (docs/performance.md), not asserted here: a test's timing is the machine's load."""
    from benchmarks.cli_startup import COMMANDS, run_once

    for label, args in COMMANDS.items():
        seconds, heavy = run_once(args)
        assert heavy == [], f"{label} imported {heavy}"


def test_serve_help_states_the_page_upload_limit():
    from mmfuse.cli import serve
    from mmfuse.gradio_app import MAX_UPLOAD_MB

    assert serve.DEFAULT_UPLOAD_MB == MAX_UPLOAD_MB


def test_public_names_load_on_first_use():
    """The lazy top-level API (PEP 562) exposes every name in __all__, and nothing else by accident."""
    for name in mmfuse.__all__:
        assert getattr(mmfuse, name) is not None, name
    assert set(mmfuse.__all__) <= set(dir(mmfuse))
    with pytest.raises(AttributeError, match="no_such_name"):
        mmfuse.no_such_name  # noqa: B018
