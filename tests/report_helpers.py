"""Helpers for tests that build a report on another engine and compare it with DuckDB's."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd


def run_funnel_report(out, **kw):
    """The funnel report with its default parameters; returns (result, metrics.json)."""
    from crm_helpers.report.run import run_notebook

    res = run_notebook(
        "funnel_dropoff",
        out_dir=out,
        parameters={"export_dir": str(out / "exports")},
        update_index=False,
        **kw,
    )
    assert res.ok, res.error
    return res, json.loads(Path(res.metrics).read_text())


def assert_same_report(metrics, expected):
    """Every figure, table and summary line equal; only the export path and provenance differ."""
    a, b = dict(metrics["metrics"]), dict(expected["metrics"])
    assert metrics["summary"] == expected["summary"]
    assert metrics["tables"] == expected["tables"]
    ea, eb = a.pop("audience.export", None), b.pop("audience.export", None)
    assert a == b
    assert a["steps"][0]["users"] > 0 and a["steps"][-1]["users"] > 0
    assert (ea is None) == (eb is None)
    if ea:
        pd.testing.assert_frame_equal(
            pd.read_parquet(ea).sort_values("user_id").reset_index(drop=True),
            pd.read_parquet(eb).sort_values("user_id").reset_index(drop=True),
            check_dtype=False,
        )
