"""The leakage rule: no feature sees the seed-defining events; near copies of the label are
left out; a seed no behaviour can predict audits at chance (the negative control), and a
seed with a real signal still beats both baselines."""

from __future__ import annotations

import html
import json
import shutil
import time

import numpy as np
import pandas as pd
import pytest

from crm_helpers import load
from crm_helpers.lookalike import narrative, pipeline
from crm_helpers.lookalike.analysis import expand
from crm_helpers.lookalike.features import feature_frame, feature_spec
from crm_helpers.lookalike.leakage import near_copies, univariate_auc
from crm_helpers.lookalike.reference import reference_features
from crm_helpers.lookalike.seeds import defining_events, seed_ids

AS_OF = pd.Timestamp("2025-01-11")


# --- the guard's arithmetic ------------------------------------------------------------


def test_univariate_auc_matches_sklearn_with_ties():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(4)
    y = rng.random(2_000) < 0.1
    x = rng.integers(0, 6, size=2_000) + 2 * y  # many ties, some signal
    assert univariate_auc(x, y) == pytest.approx(roc_auc_score(y, x), abs=1e-12)
    assert univariate_auc(x, np.zeros(2_000, bool)) != univariate_auc(x, np.zeros(2_000, bool))


def test_near_copies_flags_both_signs_and_samples_large_classes():
    rng = np.random.default_rng(0)
    y = rng.random(30_000) < 0.2
    X = np.c_[rng.normal(size=30_000), y + 0.1 * rng.random(30_000), -(y * 1.0)]
    got = near_copies(X, ["noise", "copy", "flipped"], y, max_rows=5_000)
    assert got["feature"].tolist() == ["copy", "flipped"] and got["column"].tolist() == [1, 2]
    assert got["auc"].tolist() == pytest.approx([1.0, 0.0])
    with pytest.raises(ValueError, match="threshold"):
        near_copies(X, ["a", "b", "c"], y, threshold=0.4)


def test_expand_leaves_out_a_planted_copy_of_the_label():
    """A users-column seed with one feature planted as a noisy copy of the label: the guard
    warns, names it, leaves it out, and the audit is then at chance (the rest is noise)."""
    rng = np.random.default_rng(1)
    n = 4_000
    seed = rng.random(n) < 0.1
    f = pd.DataFrame(rng.normal(size=(n, 4)), columns=list("abcd"))
    f["copy_of_label"] = seed + rng.normal(scale=0.05, size=n)
    f.insert(0, "user_id", np.arange(n))
    ids = f.loc[seed, "user_id"]
    with pytest.warns(UserWarning, match="copy_of_label"):
        ex = expand(f, ids, size=0.1)
    assert ex.near_copies["feature"].tolist() == ["copy_of_label"]
    assert ex.feature_names == list("abcd")
    assert any("copy_of_label" in n and "AUC" in n for n in ex.notes)
    assert abs(ex.audits["default"].auc - 0.5) < 0.1
    unguarded = expand(f, ids, size=0.1, near_copy_auc=None)
    assert unguarded.audits["default"].auc > 0.99  # what the copy would have reported


# --- seed events: aliases, exclusion from every feature --------------------------------


@pytest.fixture
def shop(tmp_path):
    """Three users; the purchase is called ``buy``; user 1 buys at 19:00 after two views."""
    ts = pd.to_datetime
    pd.DataFrame(
        {
            "user_id": [1, 1, 1, 2, 2, 3],
            "event": ["view", "view", "buy", "view", "view", "view"],
            "ts": ts(
                [
                    "2025-01-08 01:00",
                    "2025-01-08 13:00",
                    "2025-01-10 19:00",  # the buy: another day, later, evening, category b
                    "2025-01-05 07:00",
                    "2025-01-05 08:00",
                    "2025-01-09 10:00",
                ]
            ),
            "category": ["a", "a", "b", "a", None, "a"],
        }
    ).to_parquet(tmp_path / "events.parquet")
    pd.DataFrame({"user_id": [1, 2, 3], "tier": ["x", "y", "x"]}).to_parquet(
        tmp_path / "users.parquet"
    )
    return tmp_path


def test_seed_rules_use_the_event_aliases(shop):
    data = load(shop)
    src = defining_events(data, "purchase >= 1 in 10 days")
    assert src.events == ("buy",) and not src.orders and "'buy'" in src.how
    assert sorted(seed_ids(data, "purchases >= 1 in 10 days", AS_OF)) == [1]
    assert sorted(seed_ids(data, "order >= 1 in 10 days", AS_OF)) == [1]
    assert sorted(seed_ids(data, "VIEW >= 2 in 10 days", AS_OF)) == [1, 2]
    with pytest.raises(ValueError, match=r"no event 'signup'.*\['view', 'buy'\]|'buy'"):
        seed_ids(data, "signup >= 1 in 10 days", AS_OF)
    with pytest.raises(ValueError, match="matches no user.*'buy'"):
        pipeline.run(data, seed="purchase >= 5 in 10 days", lookback_days=10)


def test_seed_events_are_excluded_from_every_feature(shop):
    data = load(shop)
    spec = feature_spec(data, 10, AS_OF, exclude_events=["buy"])
    assert spec.event_types == ("view",) and "count:buy" not in spec.names
    assert spec.shares == {"category": ("a",)}  # the buy's category b is never seen
    got = feature_frame(data, spec).set_index("user_id")
    u1 = got.loc[1]
    assert u1["events"] == 2 and u1["active_days"] == 1  # the buy's day not counted
    assert u1["recency_days"] == pytest.approx(3 - 13 / 24)  # last view, not the buy
    assert u1["hour:evening"] == 0 and u1["hour:night"] == 0.5
    assert u1["category:a"] == 1.0
    tables = {k: t.to_pandas() for k, t in data.tables.items()}
    pd.testing.assert_frame_equal(
        got.reset_index(), reference_features(tables, spec), check_exact=False, atol=1e-4
    )
    # through the pipeline: the same features, and the summary says what was left out
    res = pipeline.run(data, seed="purchase >= 1 in 10 days", lookback_days=10, as_of="2025-01-11")
    assert res.excluded_events == ("buy",) and res.dropped_features == ("count:buy",)
    pd.testing.assert_frame_equal(res.features, got.reset_index())
    line = html.unescape(str(narrative.leakage_line(res)))
    assert "'buy'" in line and "left out of every feature" in line


def test_purchase_rule_on_orders_excludes_orders_and_purchase_events(small_world):
    data = load(small_world)
    res = pipeline.run(data, seed="purchase >= 2 in 90 days", expansion_size=0.1)
    assert res.excluded_events == ("purchase",)
    assert {"orders", "revenue", "avg_order_value", "order_recency_days"} <= set(
        res.dropped_features
    )
    names = set(res.expansion.feature_names) | set(res.features.columns)
    assert not names & {"count:purchase", "orders", "revenue", "order_recency_days"}
    guard = res.leakage_guard()
    assert guard["excluded_events"] == ["purchase"] and guard["excluded_orders"] is True


# --- negative control and a real signal ------------------------------------------------


def _world_with_injected_event(out, n_users, who, seed=3):
    """A generated world plus one ``lucky_draw`` event for each user in ``who(users,
    truth, rng)`` at a uniform time in the 59 days before the data's end; its directory."""
    from crm_helpers.synth import SynthConfig, generate, write_world

    base = out / "base"
    write_world(generate(SynthConfig(n_users=n_users, seed=seed)), base, fmt="parquet")
    ev = pd.read_parquet(base / "events.parquet")
    users = pd.read_parquet(base / "users.parquet", columns=["user_id"])
    truth = pd.read_parquet(base / "truth" / "users.parquet")
    rng = np.random.default_rng(seed + 1)
    pick = np.asarray(who(users, truth, rng))
    end = ev["ts"].max().floor("D") + pd.Timedelta(days=1)
    inj = ev.sample(len(pick), random_state=seed, replace=True).reset_index(drop=True)
    inj["user_id"] = pick
    inj["event"] = "lucky_draw"
    secs = rng.uniform(1, 59 * 86_400, size=len(pick))
    inj["ts"] = (end - pd.to_timedelta(secs, unit="s")).astype(ev["ts"].dtype)
    data_dir = out / "data"
    data_dir.mkdir()
    pd.concat([ev, inj], ignore_index=True).to_parquet(data_dir / "events.parquet")
    for name in ("users", "orders", "messages"):
        shutil.copy(base / f"{name}.parquet", data_dir / f"{name}.parquet")
    (data_dir / "ground_truth.json").write_text(json.dumps({"injected": len(pick)}))
    return data_dir


def _random_five_percent(users, truth, rng):
    ids = users["user_id"].to_numpy()
    return rng.choice(ids, size=round(0.05 * len(ids)), replace=False)


def _negative_control(tmp_path, n_users):
    t0 = time.perf_counter()
    data_dir = _world_with_injected_event(tmp_path, n_users, _random_five_percent)
    res = pipeline.run(load(data_dir), seed="lucky_draw >= 1 in 60 days", expansion_size=0.1)
    ex = res.expansion
    q = ex.audit_at_audience()
    h = ex.audits["default"].n_held_out
    print(f"{n_users:,} users, {time.perf_counter() - t0:.1f} s:", ex.audit_table().round(3), q)
    assert res.excluded_events == ("lucky_draw",)
    assert not [f for f in ex.feature_names if "lucky_draw" in f]
    assert ex.near_copies.empty
    # chance: AUC 0.5 +- 4 standard errors (sqrt((n+m+1) / (12 n m)) for H vs the rest),
    # recall at the audience size = its share of the candidates +- 4 binomial errors
    m = ex.audits["default"].n_candidates
    se_auc = np.sqrt((m + 1) / (12 * h * (m - h)))
    assert abs(ex.audits["default"].auc - 0.5) < max(4 * se_auc, 0.02)
    se_rec = np.sqrt(q["random_recall"] * (1 - q["random_recall"]) / h)
    assert abs(q["recall"] - q["random_recall"]) < 4 * se_rec
    assert abs(ex.audits["centroid"].auc - 0.5) < max(4 * se_auc, 0.02)
    return ex


def test_negative_control_random_seeds_audit_at_chance(tmp_path):
    """5,000 users, 250 random seeds (50 held out), ~4.5 s: measured AUC 0.471, recall at the
    audience size (n = 475) 0.04 against the 0.099 a random audience expects (one binomial
    standard error is 0.042 here)."""
    _negative_control(tmp_path, 5_000)


@pytest.mark.slow
def test_negative_control_at_100k_users(tmp_path):
    """100,000 users, 5,000 random seeds (1,000 held out); 33 s on the shared 2-core VM
    (world generation ~8 s of it). Measured: AUC 0.507 (standard error 0.009), recall at the
    audience size (n = 9,500) 0.113 against the 0.099 a random audience of that size expects
    (lift 1.14). This world with another draw of the 5% and the event kept in the features
    (seen by ``events``, ``recency_days``, ``active_days``): AUC 0.967 and recall 0.884 (the
    issue: 0.978, 93%); the univariate near-copy guard does not catch that leak (no single
    feature is above 0.95), which is why rule seeds exclude their events."""
    _negative_control(tmp_path, 100_000)


def test_real_signal_rule_seed_beats_both_baselines(tmp_path):
    """The same injected event, but given to 60% of the loyalists and 1% of everyone else:
    the behaviour now predicts the seed, and the audit must find it."""

    def loyal(users, truth, rng):
        t = truth.set_index("user_id").loc[users["user_id"]]
        p = np.where(t["customer_type"].to_numpy() == "loyalists", 0.6, 0.01)
        return users["user_id"].to_numpy()[rng.random(len(users)) < p]

    data_dir = _world_with_injected_event(tmp_path, 5_000, loyal)
    ex = pipeline.run(load(data_dir), seed="lucky_draw >= 1 in 60 days", expansion_size=0.1)
    ex = ex.expansion
    rec, q = ex.recall_at_n(), ex.audit_at_audience()
    print(ex.audit_table().round(3), q)
    assert ex.audits["default"].auc > 0.75
    assert rec["default"] > 3 * rec["random"] and q["lift"] > 3
    assert rec["default"] >= rec["centroid"] - 0.05
