"""End to end: `mmfuse serve` on a small model, driven by headless Chromium like a visitor would.

The screenshot of the page with a result is written to ``MMFUSE_SCREENSHOT_DIR`` when that is set
(docs/demo.md's picture comes from there), else to the test's temporary folder.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import mmfuse
from tests.browser import browser_skip_reason, chromium
from tests.demo_inputs import bad_inputs, good_image

pytestmark = pytest.mark.skipif(browser_skip_reason() is not None, reason=str(browser_skip_reason()))
pytest.importorskip("gradio")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """``mmfuse serve`` in its own process, on a free port, with a tiny saved model."""
    from mmfuse.gradio_server import wait_until_up

    folder = tmp_path_factory.mktemp("serve")
    torch.manual_seed(0)
    mmfuse.build_model(
        "ammfm-swin", primary="test_convnext", auxiliary="test_efficientnet", img_size=64
    ).save_pretrained(folder / "model")
    port = _free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    command = [sys.executable, "-m", "mmfuse", "serve", str(folder / "model"), "--port", str(port)]
    command += ["--examples", str(folder / "examples")]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_until_up(f"http://127.0.0.1:{port}/", timeout=120)
        yield folder, f"http://127.0.0.1:{port}/"
    finally:
        process.terminate()
        process.wait(timeout=30)


def _upload(driver, primary: Path, auxiliary: Path | None, expect: str) -> str:
    """Upload, click, and return the status once it shows ``expect`` and nothing is processing."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(driver, 90)
    for elem_id, path in (("primary", primary), ("auxiliary", auxiliary)):
        clear = driver.find_elements(By.CSS_SELECTOR, f"#{elem_id} button[aria-label='Clear']")
        if clear:
            clear[0].click()
        if path is not None:
            wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, f"#{elem_id} input[type=file]")))
            driver.find_element(By.CSS_SELECTOR, f"#{elem_id} input[type=file]").send_keys(str(path))
            wait.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, f"#{elem_id}"), path.stem))
    driver.find_element(By.ID, "classify").click()
    wait.until(
        lambda d: expect in (text := d.find_element(By.ID, "status").text) and "processing" not in text
    )
    return driver.find_element(By.ID, "status").text


def _shown_classes(driver, tasks) -> dict[str, str]:
    from selenium.webdriver.common.by import By

    return {
        t: driver.find_element(By.CSS_SELECTOR, f"#task-{t} [data-testid='label-output-value']").text.strip()
        for t in tasks
    }


def test_page_shows_predicts_classes_and_survives_bad_uploads(server, tmp_path):
    folder, url = server
    primary, auxiliary = good_image(tmp_path / "derm.jpg", 1), good_image(tmp_path / "clinic.jpg", 2)
    predicted = subprocess.run(
        [
            sys.executable,
            "-m",
            "mmfuse",
            "predict",
            str(folder / "model"),
            "--primary",
            str(primary),
            "--auxiliary",
            str(auxiliary),
            "--json",
        ],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    expected = {t: e["predicted"] for t, e in json.loads(predicted.stdout)["tasks"].items()}
    shots = Path(os.environ.get("MMFUSE_SCREENSHOT_DIR") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    with chromium(1280, 2100) as driver:
        from selenium.webdriver.support import expected_conditions as ec
        from selenium.webdriver.support.ui import WebDriverWait

        driver.get(url)
        WebDriverWait(driver, 60).until(ec.presence_of_element_located(("id", "classify")))
        page = driver.find_element("tag name", "body").text
        assert "not a medical device" in page
        # an example (served as the file itself: its folder is not allowed) fills the uploads and answers
        driver.find_elements("css selector", "tbody tr")[0].click()
        WebDriverWait(driver, 90).until(lambda d: "Result ready" in d.find_element("id", "status").text)
        bad = bad_inputs(tmp_path / "bad")["not an image"]
        assert "is not an image file" in _upload(driver, bad, None, "Cannot use this upload")
        status = _upload(driver, primary, auxiliary, "Result ready")
        assert "Result ready" in status
        assert _shown_classes(driver, expected) == {t: c.upper() for t, c in expected.items()}
        assert "Seven-point score" in driver.find_element("id", "seven-point").text
        driver.save_screenshot(str(shots / "demo-page.png"))
        status = _upload(driver, primary, None, "No clinical image")
        assert "No clinical image" in status
    assert (shots / "demo-page.png").stat().st_size > 10_000
