"""Payload strings and the payload data set of the injection and plotly-markup tests.

One world carries both kinds of hostile names: HTML/JS payloads (a report must never run
them: tests/notebooks/test_injection.py) and plotly markup (a figure must hold it only
escaped: tests/notebooks/test_plotly_markup.py). Each notebook runs on it once a session
with :data:`HOSTILE_PARAMETERS` (:func:`hostile_report`) and both tests read that run.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

#: Each payload sets the page title when it runs; a safe report shows it as text instead.
PAYLOAD_SCRIPT = "<script>document.title='PWNED1'</script>"
PAYLOAD_IMG = "<img src=x onerror=\"document.title='PWNED2'\">"
PAYLOAD_SVG = "<svg onload=\"document.title='PWNED3'\"></svg>"
PAYLOAD_LINK = "[click](javascript:document.title='PWNED4')"
PAYLOADS = (PAYLOAD_SCRIPT, PAYLOAD_IMG, PAYLOAD_SVG, PAYLOAD_LINK)

#: Plotly markup: in a figure's text plotly would draw a live link / restyle the page.
#: The link has no scheme: the report's Markdown renderer turns a bare ``https://`` URL in a
#: data value into a live link (a bug of its own, kept visible by the strict xfail
#: tests/report/test_text_bare_urls.py), which the injection test would report here instead.
MARKUP_LINK = '<a href="//evil.example/">x</a>'
MARKUP_SPAN = '<span style="font-size:80px">big</span>'
MARKUP = (MARKUP_LINK, MARKUP_SPAN)

#: Renamed values: (table, column) -> {old value: payload}.
RENAMES: dict[tuple[str, str], dict[str, str]] = {
    ("events", "event"): {
        "visit": PAYLOAD_SCRIPT,
        "product_view": PAYLOAD_IMG,
        "add_to_cart": MARKUP_LINK,
        "listing_view": MARKUP_SPAN,
    },
    ("events", "platform"): {"android": PAYLOAD_SVG, "ios": PAYLOAD_LINK, "web": MARKUP_LINK},
    ("events", "category"): {"beauty": PAYLOAD_IMG},
    ("users", "country"): {"IT": PAYLOAD_SCRIPT, "PL": PAYLOAD_IMG, "DE": MARKUP_LINK},
    ("users", "device"): {"ios": PAYLOAD_SVG, "android": MARKUP_SPAN},
    ("users", "acquisition_channel"): {"organic": PAYLOAD_LINK},
    ("orders", "category"): {"beauty": PAYLOAD_IMG},
    ("assignments", "experiment_id"): {},  # every experiment id gets a payload suffix
    ("assignments", "variant"): {
        "treatment": PAYLOAD_SCRIPT,
        "control": PAYLOAD_IMG,
        "variant_a": MARKUP_LINK,
    },
    ("messages", "campaign_id"): {},  # every campaign id gets a payload suffix
}
#: Columns whose every value gets a payload appended (ids: a mapping would leave most clean).
SUFFIXED: dict[tuple[str, str], str] = {
    ("assignments", "experiment_id"): f"{PAYLOAD_SVG} {MARKUP_LINK}",
    ("messages", "campaign_id"): f"{PAYLOAD_IMG} {MARKUP_SPAN}",
}

#: The folder of the data (its name has markup in it, too).
DATA_DIR_NAME = "data <img src=x onerror=\"document.title='PWNED5'\">"

#: Notebook name -> the parameters that make it use the hostile names of the data (a new
#: notebook adds one entry; both tests fail without it).
HOSTILE_PARAMETERS: dict[str, dict] = {
    "data_overview": {"top_n_events": 8},
    "funnel_dropoff": {
        "steps": [PAYLOAD_SCRIPT, PAYLOAD_IMG, MARKUP_LINK],
        "audience_step": 1,
        "breakdown_property": "platform",
        "min_group_users": 20,
    },
    "journey_mapping": {
        "anchor_event": PAYLOAD_IMG,
        "goal_event": MARKUP_LINK,
        "segment_column": "device",
    },
    "segment_profiling": {},  # users' attribute values carry payloads into the profiles
    "lookalike_expansion": {},  # likewise, into the seed / lookalike profiles
    "experiment_readout": {},  # the experiment id and the variants carry payloads
    "campaign_performance": {},  # campaign ids, and the derived holdout's experiment and arm
}

#: Given as the title of every notebook that has one (it closes <title> and opens a script).
TITLE = "Report </title><script>document.title='PWNED6'</script>"


def hostile_report(tmp_path_factory, notebook: str, data_dir: Path):
    """The report of ``notebook`` on the payload world (``data_dir``), once a session.

    With :data:`HOSTILE_PARAMETERS` and :data:`TITLE` as its title; shared by the injection
    and the plotly-markup tests (tests/shared_runs.py). Fails when the notebook has no entry.
    """
    import nbformat

    from crm_helpers import config
    from crm_helpers.report.run import parameters_cell
    from tests.shared_runs import shared_report

    if notebook not in HOSTILE_PARAMETERS:
        raise AssertionError(
            f"notebooks/{notebook}.ipynb has no entry in HOSTILE_PARAMETERS of {__file__}: "
            "add the parameters that make it run on the payload data (RENAMES says which "
            "names carry payloads)"
        )
    nb = nbformat.read(str(config.NOTEBOOKS_DIR / f"{notebook}.ipynb"), as_version=4)
    _, defaults = parameters_cell(nb)
    params = dict(HOSTILE_PARAMETERS[notebook])
    if "title" in defaults:
        params["title"] = TITLE
    return shared_report(tmp_path_factory, notebook, data_dir, params, key=f"hostile_{notebook}")


def write_payload_world(out: Path, n_users: int = 800, seed: int = 11) -> Path:
    """A small synthetic world whose names and values carry HTML/JS payloads and plotly markup.

    Event names, platform, category, user attribute values, experiment ids, variant ids and
    campaign ids are replaced by the strings of :data:`PAYLOADS` and :data:`MARKUP` (or get
    them appended; :data:`RENAMES`), so every report built on it has payloads in its summary,
    headings, tables and charts. Returns the data directory (its name has markup in it, too).
    """
    from crm_helpers.synth import SynthConfig, generate, write_world

    raw = out / "raw"
    write_world(generate(SynthConfig(n_users=n_users, seed=seed)), raw, fmt="parquet")
    data_dir = out / DATA_DIR_NAME
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
