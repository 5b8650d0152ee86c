"""Fixtures of the notebook tests: a data set whose names carry script payloads, Chromium."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.notebooks.payloads import DATA_DIR_NAME, write_payload_world
from tests.shared_runs import shared_dir

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")


@pytest.fixture(scope="session")
def payload_world(tmp_path_factory) -> Path:
    """The data directory of :func:`write_payload_world` (built once a session for every
    xdist worker, tests/shared_runs.py; read-only)."""
    return shared_dir(tmp_path_factory, "payload_world", write_payload_world) / DATA_DIR_NAME


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
