"""The experiment readout notebook on the shapes real exports have (issue #21), defaults only.

* ``impressions``: a bandit/ad impression export -- ``assignments.csv`` with one row per
  impression (``campaign, user_id, variant, ts`` as text, mapped in ``schema.yaml``), some
  users shown both arms, a 70/30 split, and events (``ad_impression`` at each impression,
  ``click``, ``purchase``);
* ``mail_just_after``: an e-mail test exported right after its outcome period: sends over
  three days, orders (with a coupon) until 1 day 18 hours after the last send;
* ``holdout_80_20``: the workbench's own lookalike export with a 20% holdout
  (:func:`crm_helpers.lookalike.holdout_assignments` + ``export``), read with and without
  the ``planned_share`` column the export records.

Each run's ``metrics.json`` is checked against the pandas brute force
(:mod:`crm_helpers.experiments.reference`) and scipy, and its summary text is read.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as st

from crm_helpers.experiments.reference import reference_per_user, reference_stats

pytestmark = pytest.mark.slow

T0 = pd.Timestamp("2025-04-07 09:00")


def _run(tmp_path, data_dir, parameters=None):
    from crm_helpers.report.run import run_notebook

    res = run_notebook(
        "experiment_readout", data_dir=data_dir, out_dir=tmp_path / "report",
        parameters=parameters or {}, update_index=False,
    )  # fmt: skip
    assert res.ok, res.error
    return res, json.loads(Path(res.metrics).read_text())


def _check_arms(m: dict, stats: pd.DataFrame, metrics: list[str]) -> None:
    ref = stats.set_index(["variant", "metric"])
    rows = [r for r in m["metrics"]["arms"] if r["metric"] in metrics]
    assert {(r["variant"], r["metric"]) for r in rows} == set(ref.index)
    for r in rows:
        want = ref.loc[(r["variant"], r["metric"])]
        assert r["n"] == int(want["n"])
        assert r["mean"] == pytest.approx(want["sum"] / want["n"], rel=1e-9)


# --- impression-level log ----------------------------------------------------------------------


def _impressions(d: Path):
    rng = np.random.default_rng(5)
    rows, ev = [], []
    for u in range(600):
        uid = f"v{u:04d}"
        arm = "b" if rng.random() < 0.7 else "a"  # the bandit favours b
        t = T0 + pd.Timedelta(minutes=int(rng.integers(0, 10 * 24 * 60)))
        for _ in range(int(rng.integers(1, 7))):  # 1-6 impressions
            shown = arm if rng.random() > 0.03 else ("a" if arm == "b" else "b")
            rows.append(("spring_banner", uid, shown, t))
            ev.append((uid, "ad_impression", t))
            t = t + pd.Timedelta(hours=float(rng.uniform(1, 48)))
        first = min(r[3] for r in rows if r[1] == uid)
        if rng.random() < 0.3:
            ev.append((uid, "click", first + pd.Timedelta(minutes=5)))
        if rng.random() < (0.12 if arm == "b" else 0.08):
            ev.append((uid, "purchase", first + pd.Timedelta(days=float(rng.uniform(0, 10)))))
    ev.append(("v0000", "click", T0 + pd.Timedelta(days=40)))  # the data end
    a = pd.DataFrame(rows, columns=["campaign", "user_id", "variant", "ts"])
    e = pd.DataFrame(ev, columns=["user_id", "event", "ts"])
    fmt = "%Y-%m-%d %H:%M:%S"
    a.assign(ts=a["ts"].dt.strftime(fmt)).to_csv(d / "assignments.csv", index=False)
    e.assign(ts=e["ts"].dt.strftime(fmt)).to_csv(d / "events.csv", index=False)
    (d / "schema.yaml").write_text(
        "columns:\n  assignments: {experiment_id: campaign, assigned_at: ts}\n"
    )
    a = a.rename(columns={"campaign": "experiment_id", "ts": "assigned_at"})
    return a, e


def test_impression_log_is_summarized_per_user(tmp_path):
    d = tmp_path / "impressions"
    d.mkdir()
    a, e = _impressions(d)
    res, m = _run(tmp_path, d)
    mm = m["metrics"]
    per_user = a.groupby("user_id")["variant"].nunique()
    assert mm["assignment_rows"] == {"rows": len(a), "users": a["user_id"].nunique()}
    assert mm["excluded"]["multi_variant"] == int((per_user > 1).sum()) > 0
    assert m["provenance"]["parameters"]["primary_metric"] == "event:purchase"
    pu = reference_per_user(a, None, e, "spring_banner", 14, 28, data_end=e["ts"].max())
    _check_arms(m, reference_stats(pu, ["event:purchase"]), ["event:purchase"])
    # the first impression is the assignment time
    first = a.groupby("user_id")["assigned_at"].min()
    assert (pu.set_index("user_id")["assigned_at"] == first.loc[pu["user_id"]].values).all()
    summary = " ".join(m["summary"])
    assert f"{len(a):,} rows for {a['user_id'].nunique():,} users" in summary
    assert "assigned at their first row (first impression)" in summary
    # the bandit's 70/30 split is not checked against an assumed 50/50
    assert mm["srm"]["checked"] is False and mm["srm"]["p_value"] is None
    n = pu["variant"].value_counts()
    split = f"{round(100 * n['b'] / n.sum())}/{round(100 * n['a'] / n.sum())} (b/a)"
    assert split == "72/28 (b/a)"  # the fixture's draw from a 70/30 bandit
    assert f"Sample ratio not checked: the arms are split {split}" in summary
    assert "Sample-ratio mismatch" not in summary


# --- an e-mail test exported right after its outcome period -----------------------------------


def _mail(d: Path):
    rng = np.random.default_rng(9)
    n = 1200
    users = [f"m{i:05d}" for i in range(n)]
    variant = np.where(rng.random(n) < 0.5, "control", "treatment")
    sent = T0 + pd.to_timedelta(rng.integers(0, 3, n), unit="D")  # three send days
    a = pd.DataFrame(
        {"experiment_id": "spring_mail", "user_id": users, "variant": variant, "assigned_at": sent}
    )
    o = []
    for u, v, t in zip(users, variant, sent, strict=True):
        if rng.random() < (0.09 if v == "treatment" else 0.06):
            ts = t + pd.Timedelta(hours=float(rng.uniform(0, 40)))
            coupon = "SPRING10" if v == "treatment" and rng.random() < 0.6 else None
            o.append((u, ts, float(rng.uniform(20, 80)), coupon))
        if rng.random() < 0.2:  # an order before the send (the CUPED pre-period)
            o.append((u, t - pd.Timedelta(days=float(rng.uniform(1, 20))), 30.0, None))
    o = pd.DataFrame(o, columns=["user_id", "ts", "revenue", "coupon"])
    end = sent.max() + pd.Timedelta(hours=42)  # the export: 1 day 18 hours after the last send
    o = o[o["ts"] <= end]
    o = pd.concat([o, pd.DataFrame([{"user_id": users[0], "ts": end, "revenue": 1.0}])])
    o.insert(0, "order_id", [f"x{i}" for i in range(len(o))])
    a.to_parquet(d / "assignments.parquet", index=False)
    o.to_parquet(d / "orders.parquet", index=False)
    return a, o, end


def test_mail_test_exported_right_after_its_outcome_period(tmp_path):
    d = tmp_path / "mail"
    d.mkdir()
    a, o, end = _mail(d)
    params = {"coupon_code": "SPRING10", "coupon_value": 3.0, "send_channel": "email"}
    res, m = _run(tmp_path, d, params)
    mm = m["metrics"]
    derived = m["provenance"]["derived"]
    assert mm["window_days"] == 1.75  # 42 hours
    assert m["provenance"]["parameters"]["analysis_window_days"] == 1.75
    assert derived["analysis_window_days"].startswith(
        f"only 0 of {len(a):,} users complete 14 days by the data end"
    )
    assert derived["data_end"] == "the latest order/event time the metrics read"
    assert mm["data_end"] == str(end)
    pu = reference_per_user(a, o, None, "spring_mail", 1.75, 28, data_end=end)
    assert len(pu) == len(a)  # every send has its 42 hours
    stats = reference_stats(pu, ["conversion", "revenue"])
    _check_arms(m, stats, ["conversion", "revenue"])
    # money on revenue as customers paid it: the coupon is a memo, not subtracted
    e = mm["economics"][0]
    tr = pu[pu["variant"] == "treatment"][["user_id", "assigned_at"]]
    red = o.merge(tr, on="user_id")
    red = red[(red["coupon"] == "SPRING10") & (red["ts"] >= red["assigned_at"])
              & (red["ts"] <= red["assigned_at"] + pd.Timedelta(hours=42))]  # fmt: skip
    assert e["coupon_redemptions"] == len(red) > 0 and e["coupon_cost"] == 3.0 * len(red)
    assert e["revenue_is_gross"] is False and e["coupon_cost_deducted"] == 0
    assert e["net_profit"] == pytest.approx(0.3 * e["incremental_revenue"] - e["send_cost"])
    summary = m["summary"]
    assert any(
        s.startswith("Caveat: Outcomes are counted within 1.75 days (42 hours)") for s in summary
    )
    memo = [s for s in summary if s.startswith("Memo")]
    assert memo and "already in the revenue" in memo[0]
    assert "(derived: only 0 of" in Path(res.html).read_text()


# --- an 80/20 holdout without planned_split --------------------------------------------------


def _holdout(d: Path, keep_plan: bool):
    from crm_helpers.lookalike import export, holdout_assignments

    rng = np.random.default_rng(3)
    audience = pd.DataFrame({"user_id": [f"l{i:05d}" for i in range(2000)]})
    asg = holdout_assignments(audience, 0.2, "lookalike_2025_04", T0, random_state=1)
    paths = export(audience, d.parent / f"export_{d.name}", assignments=asg)
    exported = pd.read_parquet(paths["assignments"])
    if not keep_plan:
        exported = exported.drop(columns="planned_share")
    exported.to_parquet(d / "assignments.parquet", index=False)
    p = np.where(asg["variant"] == "treatment", 0.15, 0.10)
    buy = rng.random(len(asg)) < p
    o = pd.DataFrame(
        {
            "order_id": np.arange(int(buy.sum())),
            "user_id": asg.loc[buy, "user_id"].to_numpy(),
            "ts": T0 + pd.to_timedelta(rng.uniform(0, 13, int(buy.sum())), unit="D"),
            "revenue": 40.0,
        }
    )
    o = pd.concat([o, pd.DataFrame([{"order_id": -1, "user_id": "l00000",
                                     "ts": T0 + pd.Timedelta(days=30), "revenue": 1.0}])])  # fmt: skip
    o.to_parquet(d / "orders.parquet", index=False)
    return exported, o


@pytest.mark.parametrize("keep_plan", [True, False], ids=["plan_recorded", "no_plan"])
def test_80_20_holdout_without_planned_split(tmp_path, keep_plan):
    d = tmp_path / "holdout"
    d.mkdir()
    a, o = _holdout(d, keep_plan)
    res, m = _run(tmp_path, d)
    mm = m["metrics"]
    counts = a["variant"].value_counts().to_dict()
    assert counts == {"treatment": 1600, "holdout": 400}
    assert mm["srm"]["observed"] == counts
    pu = reference_per_user(a, o, None, "lookalike_2025_04", 14, 28, data_end=o["ts"].max())
    _check_arms(m, reference_stats(pu, ["conversion"]), ["conversion"])
    summary = " ".join(m["summary"])
    how = m["provenance"]["derived"]["planned_split"]
    assert "Sample-ratio mismatch" not in summary
    assert "traffic split differs" not in mm["verdict"]["reason"]
    if keep_plan:  # the export recorded its plan: the readout checks against it
        assert how == "recorded in the assignments' planned_share column"
        assert mm["srm"]["checked"] is True and mm["srm"]["plan_source"] == "assignments"
        assert mm["srm"]["expected"] == pytest.approx({"treatment": 1600.0, "holdout": 400.0})
        want = st.chisquare([1600, 400], [1600, 400]).pvalue
        assert mm["srm"]["p_value"] == pytest.approx(want)
        assert "Sample ratio not checked" not in summary
    else:  # no plan anywhere: the observed split is said, SRM needs planned_split
        assert "80/20 (treatment/holdout)" in how and "no plan is assumed" in how
        assert mm["srm"]["checked"] is False and mm["srm"]["p_value"] is None
        assert "Sample ratio not checked: the arms are split 80/20 (treatment/holdout)" in summary
        assert "planned_split" in summary
        assert "not checked" in mm["decision_rule"]
