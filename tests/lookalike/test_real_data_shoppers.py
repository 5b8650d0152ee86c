"""The lookalike audit on a real session log cannot find purchasers through the purchase.

Data: tests/data/online_shoppers_intention_sample (3,000 sessions of UCI dataset 468,
CC BY 4.0, see its README), turned into the data contract by :func:`to_contract`: a user per
session; one event per page viewed, named by page type (``administrative_page``,
``informational_page``, ``product_page``), spread evenly over the session's time on those
pages; a ``purchase`` event one minute after the last page when ``Revenue`` is true; and a
``users`` table of the session's text attributes (visitor type, region, traffic type,
browser, operating system). The data carry a month but no day or hour: each session gets a
day of its month and a start time drawn with a fixed seed (2017; independent of the label).
``PageValues``, ``BounceRates`` and ``ExitRates`` (Google Analytics rates, PageValues computed
from completed purchases) are not mapped.

Seeds = "users with a purchase" (``purchase >= 1 in 400 days``). The issue measured AUC 1.000
with a feature that counted the purchase and about 0.69 without it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from crm_helpers import load
from crm_helpers.lookalike import pipeline
from crm_helpers.lookalike.analysis import expand
from crm_helpers.lookalike.features import feature_frame, feature_spec
from crm_helpers.lookalike.leakage import univariate_auc
from crm_helpers.lookalike.seeds import seed_ids

SAMPLE = Path(__file__).parents[1] / "data" / "online_shoppers_intention_sample"
SEED = "purchase >= 1 in 400 days"
PAGES = {
    "administrative_page": ("Administrative", "Administrative_Duration"),
    "informational_page": ("Informational", "Informational_Duration"),
    "product_page": ("ProductRelated", "ProductRelated_Duration"),
}
MONTHS = {"Feb": 2, "Mar": 3, "May": 5, "June": 6, "Jul": 7, "Aug": 8, "Sep": 9, "Oct": 10,
          "Nov": 11, "Dec": 12}  # fmt: skip


def to_contract(raw: pd.DataFrame, seed: int = 0) -> dict[str, pd.DataFrame]:
    """``{"users", "events"}`` in the data contract (see the module docstring)."""
    rng = np.random.default_rng(seed)
    n = len(raw)
    month = raw["Month"].map(MONTHS).to_numpy()
    day = np.floor(rng.random(n) * 28).astype(int) + 1
    start = pd.to_datetime(
        pd.DataFrame({"year": 2017, "month": month, "day": day})
    ) + pd.to_timedelta(np.round(rng.random(n) * 86_400 - 3_600).clip(0), unit="s")
    uid = np.arange(1, n + 1)
    pages = raw[[c for c, _ in PAGES.values()]].to_numpy().sum(axis=1)
    seconds = raw[[d for _, d in PAGES.values()]].to_numpy().sum(axis=1).clip(0)
    step = np.maximum(seconds / np.maximum(pages, 1), 1.0)  # distinct times: no duplicate rows
    rows, offset = [], np.zeros(n)
    for name, (count_col, _) in PAGES.items():
        k = raw[count_col].to_numpy()
        who = np.repeat(np.arange(n), k)
        i = np.arange(len(who)) - np.repeat(np.cumsum(k) - k, k)  # page number within type
        at = offset[who] + i * step[who]
        rows.append(pd.DataFrame({"user_id": uid[who], "event": name,
                                  "ts": start[who] + pd.to_timedelta(at, unit="s")}))  # fmt: skip
        offset += k * step
    bought = raw["Revenue"].to_numpy(dtype=bool)
    rows.append(
        pd.DataFrame(
            {
                "user_id": uid[bought],
                "event": "purchase",
                "ts": start[bought] + pd.to_timedelta(offset[bought] + 60, unit="s"),
            }
        )
    )
    events = pd.concat(rows, ignore_index=True).sort_values(["user_id", "ts"], kind="stable")
    events["ts"] = events["ts"].astype("datetime64[us]")
    users = pd.DataFrame(
        {
            "user_id": uid,
            "signup_at": start.astype("datetime64[us]"),
            "visitor_type": raw["VisitorType"].astype(str),
            "region": raw["Region"].astype(str),
            "traffic_type": raw["TrafficType"].astype(str),
            "browser": raw["Browser"].astype(str),
            "operating_system": raw["OperatingSystems"].astype(str),
        }
    )
    return {"users": users, "events": events.reset_index(drop=True)}


@pytest.fixture(scope="module")
def raw() -> pd.DataFrame:
    return pd.read_csv(SAMPLE / "online_shoppers_intention.csv")


@pytest.fixture(scope="module")
def shop_dir(raw, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("shoppers")
    for name, df in to_contract(raw).items():
        df.to_parquet(out / f"{name}.parquet", index=False)
    return out


@pytest.fixture(scope="module")
def shop_run(shop_dir):
    return pipeline.run(load(shop_dir), seed=SEED, lookback_days=400, expansion_size=0.1)


def test_contract_mapping(raw, shop_dir):
    data = load(shop_dir)
    ev = data.events.to_pandas()
    assert ev["event"].value_counts()["purchase"] == raw["Revenue"].sum() == 464
    per_user = ev[ev.event != "purchase"].groupby("user_id").size()
    pages = raw[["Administrative", "Informational", "ProductRelated"]].sum(axis=1)
    assert per_user.sum() == pages.sum()
    assert sorted(seed_ids(data, SEED, pd.Timestamp("2018-01-01"))) == list(
        np.flatnonzero(raw["Revenue"]) + 1
    )


def test_purchase_seed_audit_is_not_leaked(shop_run, raw):
    """Measured on the 3,000-session sample: default AUC 0.740, centroid 0.738, random 0.518;
    recall at the audience size (n = 254, 10% of the 2,536 eligible) 0.204 against the 0.097
    a random audience of that size expects (lift 2.1; the random baseline caught 0.129); 93
    held-out seeds, so the AUC's standard error is ~0.03. The issue measured ~0.69 on the
    full data without the leak; a leaked audit gives 1.000 (below)."""
    ex = shop_run.expansion
    a = ex.audits["default"]
    q = ex.audit_at_audience()
    print(ex.audit_table().round(3).to_string(), q)
    assert 0.6 <= a.auc <= 0.85
    assert a.n == ex.audience_size and q["n"] == ex.audience_size
    assert q["recall"] < 0.6 and q["lift"] > 1.3
    assert a.auc > ex.audits["random"].auc + 0.1
    # no feature counts the purchase
    assert shop_run.excluded_events == ("purchase",)
    assert not [f for f in ex.feature_names if "purchase" in f]
    f = shop_run.features.set_index("user_id")
    pages = raw[["Administrative", "Informational", "ProductRelated"]].sum(axis=1).to_numpy()
    np.testing.assert_array_equal(f["events"].to_numpy(), pages)  # the purchase not counted
    assert shop_run.leakage_guard()["excluded_events"] == ["purchase"]


def test_leaked_features_are_caught_by_the_near_copy_guard(shop_dir, raw):
    """Without the exclusion ``count:purchase`` is a copy of the label (AUC 1): the guard
    leaves it out, names it, and the audit stays near the honest one (measured: AUC 0.744
    with the purchase still in the totals and recency, against 0.740 without it). With the
    guard off too, the audit is the leaked one: AUC 1.000 for the model and the centroid."""
    data = load(shop_dir)
    spec = feature_spec(data, 400)  # the purchase NOT excluded
    feats = feature_frame(data, spec)
    assert "count:purchase" in feats.columns
    seeds = seed_ids(data, SEED, spec.as_of)
    with pytest.warns(UserWarning, match="count:purchase"):
        ex = expand(feats, seeds, size=0.1)
    assert "count:purchase" in set(ex.near_copies.feature)
    assert "count:purchase" not in ex.feature_names
    assert ex.audits["default"].auc < 0.9
    # with the guard off the audit is the leaked one the issue reported
    leaked = expand(feats, seeds, size=0.1, near_copy_auc=None)
    assert leaked.audits["default"].auc > 0.99


def test_page_values_is_not_a_near_copy_by_auc(raw):
    """``PageValues`` is computed from purchases (a post-outcome field) but is not a near copy
    of the label: its univariate AUC on the sample is 0.86 (0.863 on the full data), below
    the guard's 0.95. The AUC guard cannot catch it, so the mapping leaves it out; a
    sklearn check keeps the number honest."""
    from sklearn.metrics import roc_auc_score

    auc = univariate_auc(raw["PageValues"].to_numpy(), raw["Revenue"].to_numpy())
    assert auc == pytest.approx(roc_auc_score(raw["Revenue"], raw["PageValues"]), abs=1e-12)
    assert 0.8 < auc < 0.95
