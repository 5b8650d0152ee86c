"""Planted campaign truths (issue #22) recovered from the generated tables with plain pandas.

* **Fatigue**: a regular message's open (and so click) probability is multiplied by
  ``exp(-decay x k)``, k = the user's messages in the 7 days before it. Recovered two ways:
  exactly against the planted per-message probabilities (hidden truth: the user's type), and
  as a report would, by a log-link rate regression with a campaign fixed effect.
* **Best send hour per channel**: the hour of the highest open rate, and of the highest click
  rate, is the planted one or next to it.
* **Holdout**: ``promo_email_holdout``'s arms are exactly the recipients and non-recipients
  of its campaign; the difference of the arms' 3-day purchase proportions, with its 95%
  interval, covers the planted incremental conversion rate.

Consistency checks compare the ground truth's realised counts with pandas recounts.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import stats

from crm_helpers.synth import SynthConfig, generate
from crm_helpers.synth.sends import FATIGUE_MAX_COUNT, fatigue_count

N = 60_000  # ~3 s; the holdout's control arm gets ~4k users
COUPON_CAMPAIGN = 90


@pytest.fixture(scope="module")
def world():
    return generate(SynthConfig(n_users=N, seed=11))


def _prior_counts(m: pd.DataFrame, window_days: int) -> pd.Series:
    """Per message of ``m``: messages of the same user in [sent_at - window, sent_at), by a
    per-user loop over sorted send times (plain pandas/numpy, independent of the generator)."""
    sent = pd.to_datetime(m["sent_at"], utc=True).dt.tz_localize(None).to_numpy("datetime64[ns]")
    counted = (m["campaign_id"] != COUPON_CAMPAIGN).to_numpy()
    cu, ct = m["user_id"].to_numpy()[counted], sent[counted]
    order = np.lexsort((ct, cu))  # by user, then send time
    cu, ct = cu[order], ct[order]
    users, first = np.unique(cu, return_index=True)
    sends = dict(zip(users.tolist(), np.split(ct, first[1:]), strict=True))
    mu, mt = m["user_id"].to_numpy(), sent
    win = np.timedelta64(window_days, "D")
    out = np.zeros(len(m), dtype=np.int64)
    by_user = np.argsort(mu, kind="stable")
    starts = np.flatnonzero(np.r_[True, mu[by_user][1:] != mu[by_user][:-1]])
    for idx in np.split(by_user, starts[1:]):  # the messages of one user
        ts = sends.get(mu[idx[0]].item())
        if ts is not None:
            t = mt[idx]
            out[idx] = np.searchsorted(ts, t, "left") - np.searchsorted(ts, t - win, "left")
    return pd.Series(out, index=m.index)


@pytest.fixture(scope="module")
def regular(world):
    """Regular messages with k (messages in the previous 7 days), send hour and user type."""
    gt = world.ground_truth["campaigns"]["fatigue"]
    m = world.messages
    reg = m[m["campaign_id"] >= 100].copy()
    reg["k"] = _prior_counts(m, gt["window_days"]).loc[reg.index]
    reg["hour"] = reg["sent_at"].dt.hour
    reg["opened"] = reg["opened_at"].notna()
    reg["clicked"] = reg["clicked_at"].notna()
    types = world.truth["users"].set_index("user_id")["customer_type"]
    reg["type"] = types.loc[reg["user_id"]].to_numpy()
    return reg


def test_fatigue_count_equals_a_brute_force_loop():
    rng = np.random.default_rng(3)
    u = rng.integers(0, 5, 300)
    t = rng.integers(0, 40, 300) * 10**6 + rng.integers(0, 3, 300)  # ties
    q = np.arange(0, 300, 7)
    got = fatigue_count(u[q], t[q], u, t, 7 * 10**6)
    want = [((u == u[i]) & (t >= t[i] - 7 * 10**6) & (t < t[i])).sum() for i in q]
    assert got.tolist() == want


def test_fatigue_counts_in_the_ground_truth_equal_a_recount(world, regular):
    gt = world.ground_truth["campaigns"]["fatigue"]
    k = regular["k"].clip(upper=FATIGUE_MAX_COUNT)
    got = regular.groupby(["channel", k]).agg(
        sent=("message_id", "size"), opened=("opened", "sum"), clicked=("clicked", "sum")
    )
    for ch, rows in gt["realised_regular_by_channel"].items():
        for r in rows:
            assert got.loc[(ch, r["count"])].tolist() == [r["sent"], r["opened"], r["clicked"]]
    assert sum(len(v) for v in gt["realised_regular_by_channel"].values()) == len(got)
    assert gt["multiplier_by_count"][:4] == pytest.approx(np.exp(-gt["decay"] * np.arange(4)))
    assert regular["k"].max() >= 5  # sends pile up (the series)


def test_fatigue_multiplier_recovered_against_planted_probabilities(world, regular):
    """Opens / planted open probability without fatigue, per k, is the planted multiplier.

    Planted p(open) without fatigue = base[channel] x hour[channel][hour] x open_mult[type]
    (churned users left out: theirs drop x0.2 at a churn time the tables do not show;
    messages of the last 2 days left out: late opens are cut at the period's end). Tolerance:
    3 standard errors of the Poisson-binomial sum, at every k with >= 200 expected opens.
    """
    gt = world.ground_truth
    msg = gt["messages"]
    prof = gt["customer_types"]["profiles"]
    end = pd.Timestamp(gt["period"]["end"])
    r = regular[(regular["type"] != "churned") & (regular["sent_at"] < end - pd.Timedelta("2D"))]
    hour_mult = np.array([msg["open_hour_multiplier_by_channel"][c] for c in r["channel"]])
    p0 = (
        r["channel"].map(msg["open_probability_base"]).to_numpy()
        * hour_mult[np.arange(len(r)), r["hour"].to_numpy()]
        * r["type"].map({t: p["open_mult"] for t, p in prof.items()}).to_numpy()
    )
    f = np.asarray(gt["campaigns"]["fatigue"]["multiplier_by_count"])
    p = np.minimum(p0 * f[r["k"].to_numpy()], 0.95)
    d = pd.DataFrame({"k": r["k"], "o": r["opened"], "p0": p0, "v": p * (1 - p)})
    s = d.groupby("k").sum()
    s = s[s["p0"] * f[s.index] >= 200]
    assert list(s.index) == list(range(len(s))) and len(s) >= 5
    ratio = s["o"] / s["p0"]
    se = np.sqrt(s["v"]) / s["p0"]
    assert (np.abs(ratio - f[s.index]) <= 3 * se).all(), pd.DataFrame(
        {"recovered": ratio, "planted": f[s.index], "se": se}
    )


def _poisson_fit(
    campaign: pd.Series, k: pd.Series, y: pd.Series, *, by_cell: bool
) -> tuple[float, float, float]:
    """log E[y] = campaign effect + b x k, a Poisson GLM with robust (HC0) errors on every
    message; (b, its 95% interval's low and high end).

    ``by_cell``: fitted on the sums per (campaign, k) cell (offset log n), with the HC0
    sandwich of the per-message fit rebuilt from the cells: both are sums over messages of
    terms constant within a cell (score x (y - mu), bread n x mu x x x', meat x x' (y - mu)^2,
    whose cell sum is S - 2 mu S + n mu^2 for a 0/1 outcome, S = sum of y). The same
    numbers as the per-message fit (:func:`test_the_cell_fit_is_the_per_message_fit`) from
    a few hundred rows instead of every message.
    """
    if not by_cell:
        X = pd.get_dummies(campaign, prefix="c", dtype=float)
        X["k"] = k.astype(float)
        fit = sm.GLM(y.astype(float), X, family=sm.families.Poisson()).fit(cov_type="HC0")
        lo, hi = fit.conf_int().loc["k"]
        return fit.params["k"], lo, hi
    assert set(y.unique()) <= {0, 1}  # a 0/1 outcome (True == 1)
    cells = (
        pd.DataFrame({"c": campaign.to_numpy(), "k": k.to_numpy(), "y": y.to_numpy(float)})
        .groupby(["c", "k"], sort=True)["y"]
        .agg(["size", "sum"])
        .reset_index()
    )
    X = pd.get_dummies(cells["c"], prefix="c", dtype=float)
    X["k"] = cells["k"].astype(float)
    n, s = cells["size"].to_numpy(float), cells["sum"].to_numpy(float)
    fit = sm.GLM(s, X, family=sm.families.Poisson(), offset=np.log(n)).fit(tol=1e-12)
    x = X.to_numpy()
    mu = np.exp(x @ fit.params.to_numpy())  # per message of the cell
    bread = np.linalg.inv((x * (n * mu)[:, None]).T @ x)
    meat = (x * (s - 2 * mu * s + n * mu**2)[:, None]).T @ x
    se = np.sqrt((bread @ meat @ bread)[-1, -1])
    b, z = fit.params["k"], stats.norm.ppf(0.975)
    return b, b - z * se, b + z * se


def test_the_cell_fit_is_the_per_message_fit(regular):
    """The cell-based fit of :func:`_poisson_fit` equals statsmodels' fit on every message
    (estimate and robust interval), on a sample of 5,000 regular messages."""
    r = regular.sample(5_000, random_state=5)
    for outcome in ("opened", "clicked"):
        per_message = _poisson_fit(r["campaign_id"], r["k"], r[outcome], by_cell=False)
        by_cell = _poisson_fit(r["campaign_id"], r["k"], r[outcome], by_cell=True)
        assert by_cell == pytest.approx(per_message, rel=1e-6, abs=1e-9)


@pytest.mark.parametrize("outcome", ["opened", "clicked"])
def test_fatigue_decay_recovered_by_a_rate_regression(world, regular, outcome):
    """What a report would fit: log E[outcome] = campaign effect - decay x k (Poisson GLM
    with robust errors on every regular message, fitted by cell: :func:`_poisson_fit`); the
    planted decay is in its 95% interval."""
    decay = world.ground_truth["campaigns"]["fatigue"]["decay"]
    b, lo, hi = _poisson_fit(regular["campaign_id"], regular["k"], regular[outcome], by_cell=True)
    assert lo <= -decay <= hi, (b, lo, hi)
    assert hi < 0


def test_series_click_rate_falls_as_sends_pile_up(world):
    gt = world.ground_truth["campaigns"]
    s = gt["series"]
    m = world.messages[world.messages["campaign_id"] == s["campaign_id"]]
    assert (m["channel"] == s["channel"]).all()
    pos = m.sort_values("sent_at").groupby("user_id").cumcount()
    got = m.groupby(pos).agg(
        sent=("message_id", "size"), opened=("opened_at", "count"), clicked=("clicked_at", "count")
    )
    want = pd.DataFrame(s["realised_by_position"]).set_index("position")
    assert (got.to_numpy() == want[["sent", "opened", "clicked"]].to_numpy()).all()
    click = got["clicked"] / got["sent"]
    # position p has at least p earlier messages in the week: x exp(-0.4 p) or less
    assert click.iloc[-1] < 0.5 * click.iloc[0]
    assert (np.diff(click.to_numpy()) < 0).sum() >= len(click) - 2


def _rates_by_hour(reg: pd.DataFrame, ch: str) -> pd.DataFrame:
    return reg[reg["channel"] == ch].groupby("hour")[["opened", "clicked"]].mean()


def test_best_send_hour_per_channel_recovered(world, regular):
    gt = world.ground_truth
    best = gt["campaigns"]["best_send_hour"]["by_channel"]
    assert best == gt["messages"]["best_send_hour"]
    for ch, h in best.items():
        curve = gt["messages"]["open_hour_multiplier_by_channel"][ch]
        assert int(np.argmax(curve)) == h  # the stated best hour is the curve's peak
        rates = _rates_by_hour(regular, ch)
        assert abs(int(rates["opened"].idxmax()) - h) <= 1, (ch, rates["opened"].idxmax())
        assert abs(int(rates["clicked"].idxmax()) - h) <= 1, (ch, rates["clicked"].idxmax())
    # realised counts per channel and hour in the ground truth equal a recount
    by = gt["messages"]["realised_regular"]["by_channel_send_hour"]
    got = regular.groupby(["channel", "hour"]).agg(
        sent=("message_id", "size"), opened=("opened", "sum"), clicked=("clicked", "sum")
    )
    for ch, hours in by.items():
        for h, r in hours.items():
            assert got.loc[(ch, int(h))].tolist() == [r["sent"], r["opened"], r["clicked"]]


def test_holdout_arms_are_recipients_and_non_recipients(world):
    t = world.ground_truth["campaigns"]["holdout"]
    a = world.assignments[world.assignments["experiment_id"] == t["experiment_id"]]
    assert set(a["variant"]) == {t["treatment_variant"], t["control_variant"]}
    got = world.messages[world.messages["campaign_id"] == t["campaign_id"]]
    assert (got["channel"] == t["channel"]).all() and got["user_id"].is_unique
    treated = a[a["variant"] == t["treatment_variant"]]
    assert set(treated["user_id"]) == set(got["user_id"])
    sent = got.set_index("user_id")["sent_at"]
    assert (sent.loc[treated["user_id"]].to_numpy() == treated["assigned_at"].to_numpy()).all()
    control = a[a["variant"] == t["control_variant"]]
    assert not set(control["user_id"]) & set(world.messages["user_id"][
        world.messages["campaign_id"] == t["campaign_id"]
    ])  # fmt: skip
    share = len(control) / len(a)
    assert abs(share - 0.2) < 4 * np.sqrt(0.2 * 0.8 / len(a))


def test_holdout_incremental_effect_recovered(world):
    """Difference of the arms' shares with an order in (assigned_at, assigned_at + 3 d],
    with its 95% (Wald) interval: covers the planted effect and excludes 0."""
    t = world.ground_truth["campaigns"]["holdout"]
    a = world.assignments[world.assignments["experiment_id"] == t["experiment_id"]]
    o = world.orders[["user_id", "ts"]].merge(a[["user_id", "assigned_at"]], on="user_id")
    lag = o["ts"] - o["assigned_at"]
    hit = o.loc[(lag > pd.Timedelta(0)) & (lag <= pd.Timedelta(days=t["window_days"])), "user_id"]
    conv = a.assign(conv=a["user_id"].isin(hit)).groupby("variant")["conv"].agg(["sum", "size"])
    assert conv["sum"].to_dict() == t["converted_in_window"]
    assert conv["size"].to_dict() == t["realised_counts"]
    p = conv["sum"] / conv["size"]
    pt, pc = p[t["treatment_variant"]], p[t["control_variant"]]
    se = np.sqrt(
        pt * (1 - pt) / conv["size"][t["treatment_variant"]]
        + pc * (1 - pc) / conv["size"][t["control_variant"]]
    )
    z = stats.norm.ppf(0.975)
    diff = pt - pc
    truth = t["true_incremental_conversion_rate"]
    assert diff - z * se <= truth <= diff + z * se, (diff, se, truth)
    assert diff - z * se > 0
    assert truth == pytest.approx((1 - t["other_conversion_rate"]) * t["true_response_probability"])


def test_holdout_responses_convert_inside_the_window(world):
    """Every planted response is an order of the treated user inside the window (so the
    recorded effect is not cut by the window)."""
    t = world.ground_truth["campaigns"]["holdout"]
    ta = world.truth["assignments"]
    ta = ta[(ta["experiment_id"] == t["experiment_id"]) & ta["planted_response"]]
    assert (ta["variant"] == t["treatment_variant"]).all() and len(ta) > 50
    o = world.orders.merge(ta[["user_id", "assigned_at"]], on="user_id")
    lag = o["ts"] - o["assigned_at"]
    inside = o[(lag > pd.Timedelta(0)) & (lag <= pd.Timedelta(days=t["window_days"]))]
    assert set(ta["user_id"]) <= set(inside["user_id"])


def test_new_config_is_validated():
    with pytest.raises(ValueError, match="series"):
        SynthConfig(series_day=178, series_sends=5)
    with pytest.raises(ValueError, match="holdout"):
        SynthConfig(holdout_day=177)
    with pytest.raises(ValueError, match="channel"):
        SynthConfig(holdout_channel="fax")
    with pytest.raises(ValueError, match="fatigue"):
        SynthConfig(fatigue_decay=-0.1)
