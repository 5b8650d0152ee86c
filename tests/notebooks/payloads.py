"""Payload strings and the payload data set of the injection test (tests/notebooks)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

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
    ("messages", "campaign_id"): {},  # every campaign id gets a payload suffix
}
#: Columns whose every value gets a payload appended (ids: a mapping would leave most clean).
SUFFIXED: dict[tuple[str, str], str] = {
    ("assignments", "experiment_id"): PAYLOAD_SVG,
    ("messages", "campaign_id"): PAYLOAD_IMG,
}


def write_payload_world(out: Path, n_users: int = 800, seed: int = 11) -> Path:
    """A small synthetic world whose names and values carry HTML/JS payloads.

    Event names ``visit``/``product_view``, platform, category, user attribute values,
    experiment ids, variant ids and campaign ids are replaced by the strings of :data:`PAYLOADS` (or get
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
            if (t, col) in SUFFIXED:
                df[col] = df[col].astype("string") + " " + SUFFIXED[(t, col)]
            else:
                df[col] = df[col].replace(mapping)
        df.to_parquet(data_dir / path.name, index=False)
    return data_dir
