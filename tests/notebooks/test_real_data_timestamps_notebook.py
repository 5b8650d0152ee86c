"""A report end to end on Parquet written by pandas with zone-aware nanosecond timestamps.

The ``events_only`` shape of :mod:`tests.notebooks.test_foreign_shapes` (its frames, its
registry entry: parameters, sections that step aside, the brute-force check), with the events
written as ``datetime64[ns, Europe/Berlin]`` Parquet instead of text with an offset. The
report must equal the shape's reference, which is computed on the instants as naive UTC.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tests.notebooks.test_foreign_shapes import REGISTRY, _events_only, _skip_notes


@pytest.mark.slow
@pytest.mark.parametrize("notebook", ["funnel_dropoff", "data_overview"])
def test_report_on_zone_aware_nanosecond_parquet(notebook, tmp_path):
    from crm_helpers.data.column_types import ParquetTimestamp, parquet_timestamps
    from crm_helpers.report.run import run_notebook

    scratch, d = tmp_path / "csv", tmp_path / "data"
    scratch.mkdir()
    d.mkdir()
    frames = _events_only(scratch)  # the instants as naive UTC
    ev = frames["events"]
    berlin = ev.ts.dt.tz_localize("UTC").dt.tz_convert("Europe/Berlin")
    ev.assign(ts=berlin.astype("datetime64[ns, Europe/Berlin]")).to_parquet(
        d / "events.parquet", index=False
    )
    assert parquet_timestamps(d / "events.parquet") == {"ts": ParquetTimestamp("ns", utc=True)}
    assert pd.read_parquet(d / "events.parquet").ts.dtype == "datetime64[ns, Europe/Berlin]"

    case = REGISTRY[notebook]["events_only"]
    res = run_notebook(
        notebook, data_dir=d, out_dir=tmp_path / "out", parameters=case.params, update_index=False
    )
    assert res.ok, res.error
    notes = _skip_notes(res.executed)
    assert [n[: len(w)] for n, w in zip(notes, case.skips, strict=True)] == list(case.skips)
    m = json.loads(Path(res.metrics).read_text())
    case.check(m, frames)
    assert m["provenance"]["data"]["fingerprint"]["rows"]["events"] == len(ev)
