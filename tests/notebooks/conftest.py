"""Fixtures of the notebook tests: a data set whose names carry script payloads, Chromium."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")

#: Each payload sets the page title when it runs; a safe report shows it as text instead.
PAYLOAD_SCRIPT = "<script>document.title='PWNED1'</script>"
PAYLOAD_IMG = "<img src=x onerror=\"document.title='PWNED2'\">"
PAYLOAD_SVG = "<svg onload=\"document.title='PWNED3'\"></svg>"
PAYLOAD_LINK = "[click](javascript:document.title='PWNED4')"
PAYLOADS = (PAYLOAD_SCRIPT, PAYLOAD_IMG, PAYLOAD_SVG, PAYLOAD_LINK)

#: Renamed values: (table, column) -> {old value: payload}.
RENAMES: dict[tuple[str, str], dict[str, str]] = {
    ("events", "event"): {"visit": PAYLOAD_SCRIPT, "product_view": PAYLOAD_IMG},
    ("events", "platform"): {"android": PAYLOAD_SVG, "ios": PAYLOAD_LINK},
    ("events", "category"): {"beauty": PAYLOAD_IMG},
    ("users", "country"): {"IT": PAYLOAD_SCRIPT, "PL": PAYLOAD_IMG},
    ("users", "device"): {"ios": PAYLOAD_SVG},
    ("users", "acquisition_channel"): {"organic": PAYLOAD_LINK},
    ("orders", "category"): {"beauty": PAYLOAD_IMG},
    ("assignments", "experiment_id"): {},  # every experiment id gets a payload suffix
    ("assignments", "variant"): {"treatment": PAYLOAD_SCRIPT, "control": PAYLOAD_IMG},
}


def write_payload_world(out: Path, n_users: int = 1_500, seed: int = 11) -> Path:
    """A small synthetic world whose names and values carry HTML/JS payloads.

    Event names ``visit``/``product_view``, platform, category, user attribute values,
    experiment ids and variant ids are replaced by the strings of :data:`PAYLOADS` (or get
    one appended), so every report built on it has payloads in its summary, headings,
    tables and charts. Returns the data directory (its name has markup in it, too).
    """
    from crm_helpers.synth import SynthConfig, generate, write_world

    raw = out / "raw"
    write_world(generate(SynthConfig(n_users=n_users, seed=seed)), raw, fmt="parquet")
    data_dir = out / "data <img src=x onerror=\"document.title='PWNED5'\">"
    data_dir.mkdir()
    for path in sorted(raw.glob("*.parquet")):
        df = pd.read_parquet(path)
        table = path.stem
        for (t, col), mapping in RENAMES.items():
            if t != table or col not in df.columns:
                continue
            if t == "assignments" and col == "experiment_id":
                df[col] = df[col].astype("string") + " " + PAYLOAD_SVG
            else:
                df[col] = df[col].replace(mapping)
        df.to_parquet(data_dir / path.name, index=False)
    return data_dir


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
