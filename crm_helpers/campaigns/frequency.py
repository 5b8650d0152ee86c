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
    """``rate(k) = base * decay**k`` fitted to per-band counts (module docstring)."""

    base: float
    decay: float
    decay_ci_low: float
    decay_ci_high: float
    p_value: float
    max_count: int

    def rate(self, k: np.ndarray | float) -> np.ndarray | float:
        """The fitted response rate of a message with ``k`` earlier messages in the window."""
        return self.base * self.decay ** np.asarray(k, dtype=float)

    @property
    def significant(self) -> bool:
        """The decay's interval excludes 1."""
        return bool(self.decay_ci_high < 1.0 or self.decay_ci_low > 1.0)


def fit_decay(
    counts: pd.DataFrame, metric: str = "click_rate", stratum: str | None = "campaign_id"
) -> DecayFit | None:
    """Fit ``rate(k) = base * decay**k`` (binomial GLM, log link) to the frequency counts.

    ``counts``: :func:`~crm_helpers.campaigns.core.frequency_counts` (any grouping: bands
    are pooled by ``prior_messages``, within ``stratum`` when the counts have that column:
    a fixed effect per stratum, see the module docstring). None when fewer than two bands
    or the fit fails.
    """
    import statsmodels.api as sm

    num = HOUR_METRICS[metric]
    if num not in counts.columns:
        return None
    strat = stratum if stratum and stratum in counts.columns else None
    c = pd.DataFrame(
        {"k": counts["prior_messages"].to_numpy(int), "n": _num(counts["sent"]),
         "x": _num(counts[num]),
         "s": counts[strat].astype(str).to_numpy() if strat else np.zeros(len(counts), str)}
    )  # fmt: skip
    c = c[np.isfinite(c["x"])].groupby(["s", "k"])[["n", "x"]].sum().reset_index()
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
    return DecayFit(
        base=base,
        decay=math.exp(b1),
        decay_ci_low=math.exp(lo),
        decay_ci_high=math.exp(hi),
        p_value=float(np.asarray(res.pvalues)[1]),
        max_count=int(c["k"].max()),
    )


def frequency_cap(fit: DecayFit | None, threshold: float) -> int | None:
    """Messages per window after which one more adds fewer than ``threshold`` expected
    responses (module docstring); None when not measurable."""
    if fit is None or not fit.significant or fit.decay >= 1.0:
        return None
    for k in range(fit.max_count + 1):
        if fit.rate(k) < threshold:
            return k
    return None
