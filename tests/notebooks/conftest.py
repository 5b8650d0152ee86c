"""Fixtures of the notebook tests: a data set whose names carry script payloads, Chromium."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.notebooks.payloads import write_payload_world

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")


@pytest.fixture(scope="session")
def payload_world(tmp_path_factory) -> Path:
    """The data directory of :func:`write_payload_world` (session-wide, read-only)."""
    return write_payload_world(tmp_path_factory.mktemp("payload_world"))


@pytest.fixture(scope="module")
def chromium():
    """A headless Chromium (Debian's chromium + chromedriver) driven by selenium."""
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip(f"headless browser test needs {CHROMIUM} and {CHROMEDRIVER} (Debian chromium)")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1300,2400",
        "--allow-file-access-from-files",
    ):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    drv = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=opts)
    yield drv
    drv.quit()
