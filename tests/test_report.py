"""report.html: one self-contained page per run, rebuilt by ``mmfuse report``, rendering cleanly in Chromium."""

from __future__ import annotations

import re

import pytest
from browser import browser_skip_reason, chromium, console_errors
from test_training_fixtures import make_release, tiny_config, write_config

from mmfuse.cli import main


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    release = make_release(tmp / "derm7pt")
    config = tiny_config(release, evaluation={"plots": True})
    run = tmp / "run"
    assert main(["train", str(write_config(tmp / "run.yaml", config)), "--out", str(run)]) == 0
    return run


@pytest.mark.slow
def test_training_writes_a_self_contained_report_with_every_section(run):
    page = (run / "report.html").read_text()
    for section in (
        "Configuration",
        "Training",
        "Metrics",
        "Calibration",
        "Robustness",
        "Head weights",
        "Parameters and cost",
    ):
        assert f">{section}</h2>" in page, section
    # no external resource: every image is embedded, nothing is fetched
    sources = re.findall(r'(?:src|href)="([^"#]*)"', page)
    assert sources and all(s.startswith("data:") for s in sources), sources
    assert page.count("data:image/png;base64,") >= 6  # curves, ROC, confusion, reliability, surface
    assert "<script" not in page
    assert re.search(r'class="ci">\[\d+\.\d, \d+\.\d\]', page)  # metric intervals
    assert "ECE before" in page and "weight search surface" in page
    assert "Not computed" in page  # robustness until it is run


@pytest.mark.slow
def test_report_command_rebuilds_the_page_with_robustness_curves(run, capsys):
    args = ["evaluate", str(run), "--bootstrap", "0", "--robustness", "--corruptions", "jpeg"]
    assert main(args) == 0  # writes into the run directory and refreshes its page
    page = (run / "report.html").read_text()
    assert "Not computed" not in page and "robustness curves" in page
    (run / "report.html").unlink()
    assert main(["report", str(run)]) == 0
    assert "report.html" in capsys.readouterr().out
    assert (run / "report.html").read_text() == page
    assert main(["report", str(run / "nope")]) == 1
    assert "run directory not found" in capsys.readouterr().err
    seeds = run.parent / "seeds"
    (seeds / "seed_0").mkdir(parents=True)
    assert main(["report", str(seeds)]) == 1
    error = capsys.readouterr().err
    assert "not a training run directory" in error and "seed_0" in error


@pytest.mark.slow
def test_report_renders_in_headless_chromium_without_console_errors(run):
    reason = browser_skip_reason()
    if reason:
        pytest.skip(reason)
    assert main(["report", str(run)]) == 0
    with chromium() as driver:
        driver.get((run / "report.html").resolve().as_uri())
        assert driver.title.startswith("mmfuse run report")
        images = driver.execute_script(
            "return Array.from(document.images).map(i => [i.alt, i.complete && i.naturalWidth > 0])"
        )
        assert images and all(loaded for _, loaded in images), images
        headings = driver.execute_script(
            "return Array.from(document.querySelectorAll('h2')).map(h => h.textContent)"
        )
        assert "Metrics" in headings and "Parameters and cost" in headings
        assert console_errors(driver) == []
