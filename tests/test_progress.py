"""Long commands show progress: a bar on a terminal, one line per step in a log, each with an ETA."""

from __future__ import annotations

import io

from mmfuse.progress import Steps


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_log_gets_one_line_per_step_with_the_time_left(monkeypatch):
    clock = iter([100.0, 110.0, 130.0])  # start, then after each step
    monkeypatch.setattr("mmfuse.progress.time.perf_counter", lambda: next(clock))
    log = io.StringIO()
    with Steps(4, "robustness", file=log) as steps:
        steps.step("clean")
        steps.step("auxiliary jpeg severity 1")
    assert log.getvalue().splitlines() == [
        "robustness 1/4  clean  10 s elapsed, 30 s left",
        "robustness 2/4  auxiliary jpeg severity 1  30 s elapsed, 30 s left",
    ]
    assert "\r" not in log.getvalue()


def test_a_terminal_gets_a_bar_and_off_means_silent():
    terminal = _Terminal()
    with Steps(3, "building models", file=terminal, unit="model") as steps:
        steps.step("ammfm-swin")
    assert "\r" in terminal.getvalue() and "building models" in terminal.getvalue()
    assert "1/3" in terminal.getvalue()
    forced = _Terminal()
    with Steps(2, "benchmarks", file=forced, progress="lines") as steps:
        steps.step("models")
    assert forced.getvalue().startswith("benchmarks 1/2  models  ") and "\r" not in forced.getvalue()
    quiet = io.StringIO()
    with Steps(2, "x", file=quiet, progress=False) as steps:
        steps.step()
    assert quiet.getvalue() == ""
