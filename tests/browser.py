"""Headless Chromium for the tests that open a page: one launcher, one way to read the console.

``browser_skip_reason()`` says why no browser test can run here (no Selenium, no Chromium, no chromedriver);
``chromium()`` starts a fresh headless browser in its own profile directory and always quits it. The
binaries are found on PATH or through ``MMFUSE_CHROMIUM`` and ``MMFUSE_CHROMEDRIVER``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)


def _find(variable: str, names: tuple[str, ...]) -> str | None:
    explicit = os.environ.get(variable)
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    return next((path for name in names if (path := shutil.which(name))), None)


def chromium_binary() -> str | None:
    return _find("MMFUSE_CHROMIUM", ("chromium", "chromium-browser", "google-chrome", "chrome"))


def chromedriver_binary() -> str | None:
    return _find("MMFUSE_CHROMEDRIVER", ("chromedriver",))


def browser_skip_reason() -> str | None:
    """Why browser tests cannot run here, or ``None`` when they can."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[dev]')"
    if chromium_binary() is None:
        return "no Chromium/Chrome binary on PATH (or MMFUSE_CHROMIUM)"
    if chromedriver_binary() is None:
        return "no chromedriver on PATH (or MMFUSE_CHROMEDRIVER)"
    return None


@contextlib.contextmanager
def chromium(width: int = 1280, height: int = 1000) -> Iterator:
    """A headless Selenium Chrome driver that records the browser console (``console_errors``)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="mmfuse-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium_binary()
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument(f"--window-size={width},{height}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=chromedriver_binary()))
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def console_errors(driver) -> list[str]:
    """The SEVERE entries of the browser console since the last call (failed loads, script errors)."""
    return [entry["message"] for entry in driver.get_log("browser") if entry.get("level") == "SEVERE"]
