"""A report built with ``currency="EUR"`` shows EUR; one on orders with a currency column
derives it (#26)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from crm_helpers.report.run import run_notebook

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("report_notebooks")]

PLOTLY = "application/vnd.plotly.v1+json"


def _figures(executed: str) -> list[dict]:
    nb = nbformat.read(executed, as_version=4)
    return [
        o["data"][PLOTLY]
        for c in nb.cells
        for o in c.get("outputs", [])
        if PLOTLY in o.get("data", {})
    ]


def test_a_funnel_report_with_currency_eur_shows_eur(small_world, tmp_path):
    res = run_notebook(
        "funnel_dropoff",
        data_dir=small_world,
        out_dir=tmp_path,
        parameters={"currency": "EUR"},
        update_index=False,
    )
    assert res.ok, res.error
    html = Path(res.html).read_text()
    recorded = json.loads(Path(res.metrics).read_text())
    assert recorded["provenance"]["parameters"]["currency"] == "EUR"
    assert "currency" not in recorded["provenance"].get("derived", {})
    # the sizing table's money columns: expected revenue, total cost, net value
    sizing = pd.DataFrame(recorded["tables"]["sizing"])
    assert len(sizing)
    money_cells = html.count(" EUR</td>")
    assert money_cells >= 3 * len(sizing), money_cells
    titles = [f["layout"]["yaxis"]["title"]["text"] for f in _figures(res.executed)
              if f["layout"].get("title", {}).get("text") == "Campaign sizing"]  # fmt: skip
    assert titles == ["Expected net value (EUR)"]
    if (sizing["net_value"] > 0).any():  # the memo names the most valuable campaign's value
        assert any(line.endswith(" EUR.") for line in recorded["summary"])


def test_an_overview_of_orders_in_eur_derives_eur(small_world, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for f in small_world.glob("*.parquet"):
        shutil.copy(f, data / f.name)
    orders = pd.read_parquet(data / "orders.parquet")
    orders["currency"] = "EUR"
    orders.to_parquet(data / "orders.parquet", index=False)
    res = run_notebook("data_overview", data_dir=data, out_dir=tmp_path / "out", update_index=False)
    assert res.ok, res.error
    recorded = json.loads(Path(res.metrics).read_text())
    prov = recorded["provenance"]
    assert prov["parameters"]["currency"] == "EUR"
    assert prov["derived"]["currency"] == "the one value of the orders' currency column"
    html = Path(res.html).read_text()
    assert 'EUR <em class="crm-derived">(derived: the one value' in html
    assert html.count(" EUR</td>") >= 4  # revenue, gross, per order, per customer
    assert any(" EUR in " in line or " EUR gross" in line for line in recorded["summary"])
