"""The campaign report with an opt-out event in the data and campaigns named as one test.

The SMS shape of tests/notebooks/message_shapes.py (clicks, no opens, ``buy`` events) plus
``sms_opt_out`` events (STOP replies) after some sends. The report must derive
``optout_event`` from the shared vocabulary and say so, count the opt-outs per frequency
band as a brute force does, and read ``message_test_campaigns`` as the arms of one test.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.notebooks.message_shapes import _text, sms_no_opens

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    from crm_helpers.report.run import run_notebook

    d = tmp_path_factory.mktemp("sms_optout")
    frames = sms_no_opens(d)
    m, ev = frames["messages"], frames["events"]
    rng = np.random.default_rng(5)
    pick = m.sample(25, random_state=5)
    stop = pd.DataFrame(
        {
            "user_id": pick["user_id"].to_numpy(),
            "event": "sms_opt_out",
            "ts": (pick["sent_at"] + pd.to_timedelta(rng.uniform(60, 2 * 86_400, 25), unit="s"))
            .dt.floor("s")
            .astype("datetime64[us]")
            .to_numpy(),
        }
    )
    ev = pd.concat([ev, stop], ignore_index=True)
    ev.assign(ts=_text(ev["ts"])).to_csv(d / "events.csv", index=False)
    out = tmp_path_factory.mktemp("sms_optout_report")
    res = run_notebook(
        "campaign_performance",
        data_dir=d,
        out_dir=out,
        parameters={"message_test_campaigns": ["spring", "winback"]},
        update_index=False,
    )
    assert res.ok, res.error
    return json.loads(Path(res.metrics).read_text()), m, stop


def test_opt_out_event_is_derived_and_labelled(report):
    metrics, _, _ = report
    prov = metrics["provenance"]
    assert prov["parameters"]["optout_event"] == "sms_opt_out"
    assert "opt-out vocabulary" in prov["derived"]["optout_event"]


def test_opt_outs_per_band_equal_a_brute_force_count(report):
    metrics, m, stop = report
    p = metrics["provenance"]["parameters"]
    window, days = (
        pd.Timedelta(days=p["fatigue_window_days"]),
        pd.Timedelta(days=p["attribution_days"]),
    )
    bands, outs = [], []
    for r in m.itertuples():
        mine = m[m["user_id"] == r.user_id]
        bands.append(
            int(((mine["sent_at"] >= r.sent_at - window) & (mine["sent_at"] < r.sent_at)).sum())
        )
        o = stop.loc[stop["user_id"] == r.user_id, "ts"]
        outs.append(bool(((o > r.sent_at) & (o <= r.sent_at + days)).any()))
    want = pd.DataFrame({"count": np.minimum(bands, 10), "out": outs}).groupby("count")["out"].sum()
    got = {b["count"]: b["optouts"] for b in metrics["metrics"]["fatigue"]["by_count"]}
    assert got == {int(k): int(v) for k, v in want.items()}
    assert sum(got.values()) > 0


def test_named_campaigns_are_read_as_one_test(report):
    metrics, m, _ = report
    rows = metrics["tables"]["message_tests"]
    assert [(r["experiment_id"], r["variant"], r["baseline"]) for r in rows] == [
        ("message test", "spring", True),
        ("message test", "winback", False),
    ]
    for r in rows:
        sent = m[m["campaign_id"] == r["variant"]]
        assert r["sent"] == len(sent)
        assert r["click_rate"] == pytest.approx(sent["clicked_at"].notna().mean())
    assert any(
        line.startswith("Message test <code>message test</code>") for line in metrics["summary"]
    )
