"""How often: response by the number of messages a user got just before, a fitted decay, a cap.

Semantics
---------
*Frequency bands.* A message's band is ``prior_messages`` (the user's messages in the
``fatigue_window_days`` before it, :func:`crm_helpers.campaigns.core.message_facts`), with
every count at or above ``max_count`` pooled into ``max_count`` (shown as "N+").
:func:`frequency_table` gives per band the sends, the responses and the response rate with
its Wilson interval; with opt-outs (:func:`~crm_helpers.campaigns.core.with_optouts`) also
the share of messages followed by an opt-out, the guardrail of a frequency band.

*Decay.* :func:`fit_decay` fits a binomial GLM with a log link to the per-band counts
(unpooled counts): ``rate(k) = base * decay**k`` — each message already received in the
window multiplies the response rate by ``decay``. When the counts have a ``campaign_id``
column (``stratum``), each campaign has its own base rate (a campaign fixed effect):
``rate(k, c) = base_c * decay**k``, so that a campaign that is both sent to users who got
many messages and responded to less (e.g. a daily series) does not make the decay look
steeper; campaigns with no response or a single band carry no information on ``decay`` and
are left out of the fit; ``base`` is then the send-weighted mean of the ``base_c`` (the
rate of a message with no earlier message, on the campaigns' mix of sends). ``decay`` has a
95% Wald interval from the GLM (``exp`` of the slope's interval). Fitted with statsmodels;
None when fewer than two bands have sends or the fit fails.

*Cluster-robust interval.* When ``cluster`` names a column of the counts (e.g. counts by
``("campaign_id", "user_id")`` for ``cluster="user_id"``), the slope's variance is the
sandwich ``B M B x G/(G-1) x (N-1)/(N-P)`` (``B``: the inverse observed information, ``M``: the
sum over clusters of the outer product of the cluster's summed score rows, ``G`` clusters,
``N`` messages, ``P`` parameters: statsmodels' ``cov_type="cluster"`` on the message-level
GLM), and the interval and p-value use Student's t with ``G - 1`` degrees of freedom. The
point estimate is the same as without ``cluster``; the model interval stays in
``decay_ci_low_model``/``decay_ci_high_model``. Which unit to cluster by: messages of one
user share the user's responsiveness (real logs: users who open, open again), which the
model interval ignores; clustering by campaign is not advised: the campaign effect already
absorbs the campaign's base rate, and with few campaigns carrying the slope (a series, a
campaign sent soon after another) the sandwich is smaller than the model variance and covers
less (tests/campaigns/test_fatigue_interval.py, measured on the synthetic world).

*Cap.* :func:`frequency_cap`: the smallest ``k >= 0`` whose fitted rate is below
``threshold`` (expected responses of one more message, per message): users should get at
most ``k`` messages per window. None when the decay's interval contains 1 (no fatigue
measurable), or when no ``k`` up to the largest observed band falls below the threshold.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from crm_helpers.campaigns.analysis import HOUR_METRICS, _num
from crm_helpers.stats import wilson_interval

__all__ = ["DecayFit", "fit_decay", "frequency_cap", "frequency_table"]


def frequency_table(
    counts: pd.DataFrame, metric: str = "click_rate", max_count: int = 10
) -> pd.DataFrame:
    """Response rate by frequency band, all groups pooled.

    Parameters
    ----------
    counts
        Output of :func:`~crm_helpers.campaigns.core.frequency_counts`.
    metric
        ``"open_rate"`` (human opens), ``"click_rate"`` or ``"conversion_rate"``.
    max_count
        Bands at or above it are pooled into it.

    Returns
    -------
    pandas.DataFrame
        ``count, label, sent, successes, rate, ci_low, ci_high`` by ``count`` (plus
        ``optouts, optout_rate, optout_ci_low, optout_ci_high`` when the counts have
        ``opted_out``, :func:`~crm_helpers.campaigns.core.with_optouts`); empty when the log
        lacks the metric's response.
    """
    num = HOUR_METRICS[metric]
    cols = ["count", "label", "sent", "successes", "rate", "ci_low", "ci_high"]
    x = _num(counts[num]) if num in counts.columns else np.array([np.nan])
    if not np.isfinite(x).any():
        return pd.DataFrame(columns=cols)
    c = pd.DataFrame(
        {
            "count": np.minimum(counts["prior_messages"].to_numpy(int), max_count),
            "sent": _num(counts["sent"]),
            "successes": x,
        }
    )
    if "opted_out" in counts.columns:
        c["optouts"] = _num(counts["opted_out"])
        cols += ["optouts", "optout_rate", "optout_ci_low", "optout_ci_high"]
    t = c.groupby("count", sort=True).sum().reset_index()
    t["label"] = [f"{k}+" if k == max_count else str(k) for k in t["count"]]
    t["rate"] = t["successes"] / t["sent"]
    t["ci_low"], t["ci_high"] = wilson_interval(t["successes"], t["sent"])
    if "optouts" in t.columns:
        t["optout_rate"] = t["optouts"] / t["sent"]
        t["optout_ci_low"], t["optout_ci_high"] = wilson_interval(t["optouts"], t["sent"])
        t["optouts"] = t["optouts"].astype("int64")
    t["sent"] = t["sent"].astype("int64")
    t["successes"] = t["successes"].astype("int64")
    return t[cols]


@dataclass(frozen=True)
class DecayFit:
    """``rate(k) = base * decay**k`` fitted to per-band counts (module docstring).

    ``log_decay_se`` is the standard error of ``log(decay)`` behind ``decay_ci_*``:
    ``variance`` says which (``"model"`` or ``"cluster-robust by <column>"``, with
    ``clusters`` clusters); ``decay_ci_low_model``/``decay_ci_high_model`` are the model
    interval either way.
    """

    base: float
    decay: float
    decay_ci_low: float
    decay_ci_high: float
    p_value: float
    max_count: int
    log_decay_se: float = math.nan
    variance: str = "model"
    clusters: int = 0
    decay_ci_low_model: float = math.nan
    decay_ci_high_model: float = math.nan

    def rate(self, k: np.ndarray | float) -> np.ndarray | float:
        """The fitted response rate of a message with ``k`` earlier messages in the window."""
        return self.base * self.decay ** np.asarray(k, dtype=float)

    @property
    def significant(self) -> bool:
        """The decay's interval excludes 1."""
        return bool(self.decay_ci_high < 1.0 or self.decay_ci_low > 1.0)


def fit_decay(
    counts: pd.DataFrame,
    metric: str = "click_rate",
    stratum: str | None = "campaign_id",
    cluster: str | None = None,
) -> DecayFit | None:
    """Fit ``rate(k) = base * decay**k`` (binomial GLM, log link) to the frequency counts.

    ``counts``: :func:`~crm_helpers.campaigns.core.frequency_counts` (any grouping: bands
    are pooled by ``prior_messages``, within ``stratum`` when the counts have that column:
    a fixed effect per stratum, see the module docstring). ``cluster``: a column of the
    counts to cluster the interval by (module docstring; ignored when absent). None when
    fewer than two bands or the fit fails.
    """
    import statsmodels.api as sm

    num = HOUR_METRICS[metric]
    if num not in counts.columns:
        return None
    strat = stratum if stratum and stratum in counts.columns else None
    clus = cluster if cluster and cluster in counts.columns else None
    raw = pd.DataFrame(
        {"k": counts["prior_messages"].to_numpy(int), "n": _num(counts["sent"]),
         "x": _num(counts[num]),
         "s": counts[strat].astype(str).to_numpy() if strat else np.zeros(len(counts), str),
         "g": counts[clus].astype(str).to_numpy() if clus else np.zeros(len(counts), str)}
    )  # fmt: skip
    raw = raw[np.isfinite(raw["x"])]
    c = raw.groupby(["s", "k"])[["n", "x"]].sum().reset_index()
    c = c[c["n"] > 0]
    if c["k"].nunique() < 2 or c["x"].sum() == 0:
        return None
    g = c.groupby("s")
    informative = (g["x"].transform("sum") > 0) & (g["k"].transform("nunique") > 1)
    fit_rows = c[informative] if strat else c
    if fit_rows["k"].nunique() < 2:
        return None
    strata = sorted(fit_rows["s"].unique())
    dummies = pd.get_dummies(
        pd.Categorical(fit_rows["s"], categories=strata), drop_first=True, dtype=float
    ).to_numpy()
    exog = np.column_stack([np.ones(len(fit_rows)), fit_rows["k"].to_numpy(float), dummies])
    y = np.column_stack([fit_rows["x"], fit_rows["n"] - fit_rows["x"]])
    family = sm.families.Binomial(link=sm.families.links.Log())
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rate = max(fit_rows["x"].sum() / fit_rows["n"].sum(), 1e-9)
            start = np.r_[math.log(rate), 0.0, np.zeros(dummies.shape[1])]
            res = sm.GLM(y, exog, family=family).fit(start_params=start)
    except (ValueError, np.linalg.LinAlgError, FloatingPointError):
        return None
    params = np.asarray(res.params, float)
    b1 = float(params[1])
    lo, hi = (float(v) for v in np.asarray(res.conf_int())[1])
    if not all(math.isfinite(v) for v in (*params, lo, hi)):
        return None
    base_s = np.exp(params[0] + np.r_[0.0, params[2:]])  # per stratum, in ``strata`` order
    sends = c.groupby("s")["n"].sum().reindex(strata).to_numpy(float)
    base = float(np.sum(base_s * sends) / np.sum(sends))
    se = float(np.asarray(res.bse)[1])
    p_value = float(np.asarray(res.pvalues)[1])
    out = {"log_decay_se": se, "variance": "model", "clusters": 0}
    if clus:
        rows = raw[raw["s"].isin(strata)]
        try:
            bread = np.linalg.inv(-res.model.hessian(params, observed=True))
        except np.linalg.LinAlgError:
            return None
        se_c, n_clusters = _cluster_se(rows, strata, params, bread)
        if n_clusters < 2 or not math.isfinite(se_c) or se_c <= 0:
            return None
        from scipy import stats as _st

        q = float(_st.t.ppf(0.975, n_clusters - 1))
        lo, hi = b1 - q * se_c, b1 + q * se_c
        p_value = float(2 * _st.t.sf(abs(b1) / se_c, n_clusters - 1))
        out = {"log_decay_se": se_c, "variance": f"cluster-robust by {clus}",
               "clusters": n_clusters}  # fmt: skip
    lo_m, hi_m = (float(v) for v in np.asarray(res.conf_int())[1])
    return DecayFit(
        base=base,
        decay=math.exp(b1),
        decay_ci_low=math.exp(lo),
        decay_ci_high=math.exp(hi),
        p_value=p_value,
        max_count=int(c["k"].max()),
        decay_ci_low_model=math.exp(lo_m),
        decay_ci_high_model=math.exp(hi_m),
        **out,
    )


def _cluster_se(
    rows: pd.DataFrame, strata: list[str], params: np.ndarray, bread: np.ndarray
) -> tuple[float, int]:
    """The cluster-robust standard error of the slope (module docstring) and the number of
    clusters, from count rows ``g, s, k, n, x`` (cluster, stratum, band, sends, responses)
    of the strata the GLM was fitted on."""
    pos = {s: i for i, s in enumerate(strata)}
    p = len(params)
    x = np.zeros((len(rows), p))
    x[:, 0] = 1.0
    x[:, 1] = rows["k"].to_numpy(float)
    j = np.array([pos[s] for s in rows["s"]])
    has = j > 0
    x[np.flatnonzero(has), 1 + j[has]] = 1.0
    mu = np.exp(x @ params)
    n, y = rows["n"].to_numpy(float), rows["x"].to_numpy(float)
    # score of a binomial row with a log link: x (y - n mu) / (1 - mu)
    score = x * ((y - n * mu) / (1.0 - mu))[:, None]
    codes, _ = pd.factorize(rows["g"])
    g = int(codes.max()) + 1
    s = np.zeros((g, p))
    np.add.at(s, codes, score)
    nobs = float(n.sum())
    fac = g / (g - 1) * (nobs - 1) / (nobs - p) if g > 1 else math.nan
    v = bread @ (s.T @ s) @ bread * fac
    return float(math.sqrt(max(v[1, 1], 0.0))), g


def frequency_cap(fit: DecayFit | None, threshold: float) -> int | None:
    """Messages per window after which one more adds fewer than ``threshold`` expected
    responses (module docstring); None when not measurable."""
    if fit is None or not fit.significant or fit.decay >= 1.0:
        return None
    for k in range(fit.max_count + 1):
        if fit.rate(k) < threshold:
            return k
    return None
