"""Health states backed by the fitted BG/NBD model, with thresholds chosen on the calibration
period and checked on the holdout.

Semantics
---------
*Window.* The states look ``window_days`` ahead (the notebook: ``model_horizon_days``, at most
the holdout length). A customer is *inactive in a window* if they make no purchase (no
purchase day, as :func:`~crm_helpers.segments.core.btyd_summary` counts them) in it.

*Scores* (:func:`model_scores`), per customer with history ``(x, t_x, T)`` under the fitted
``(r, alpha, a, b)`` and a window of ``w`` time units:

- ``p_alive`` = P(alive at T | x, t_x, T) (Fader, Hardie & Lee 2005, eq. 11);
- ``p_buy`` = P(at least one purchase in (T, T + w] | x, t_x, T)
  = ``p_alive * (1 - ((alpha + T) / (alpha + T + w)) ** (r + x))`` (alive, the rate's
  posterior is Gamma(r + x, alpha + T); a purchase is needed to drop out, so no purchase in
  the window has probability ``E[exp(-lambda w)]``);
- ``expected`` = E[Y(w) | x, t_x, T], the expected purchases in the window.

*Which score a customer is judged on.* Repeat buyers (``x > 0``) by ``p_alive``, as the issue
asks. One-time buyers (``x == 0``) have ``p_alive == 1`` by the model's construction (a
BG/NBD customer can only drop out right after a purchase), so P(alive) cannot separate them;
the stated rule is that they are judged by ``p_buy`` instead (which falls as the time since
their only purchase grows). Each group has its own thresholds.

*Thresholds* (:func:`choose_thresholds`), chosen inside the calibration period only: the model
is fitted at ``inner_end = calibration_end - window_days`` and each customer's inactivity in
``(inner_end, calibration_end]`` observed. Per group, an isotonic (non-increasing) regression
of inactivity on the score (weighted by customer counts) gives the calibrated chance of being
inactive at each score; the churned threshold is the largest score whose calibrated chance is
at least ``churn_rate`` (the dormant-risk threshold likewise with ``dormant_rate``, never
below the churned one), ``None`` if no score reaches it (nobody flagged). So every flagged
customer's calibrated chance of buying nothing in the window is at least the target, and the
precision of the flagged group on the inner split is at least the target too.

*Holdout check* (:func:`check_thresholds`): the model fitted at ``calibration_end`` scores the
customers there; flags with the chosen thresholds are compared with inactivity in
``(calibration_end, calibration_end + window_days]``: customers flagged, precision (flagged
and inactive / flagged) and recall (flagged and inactive / inactive), per group and overall.

*States* (:func:`state_table`): ``churned`` if the score is at most the group's churned
threshold, else ``dormant-risk`` if at most its dormant-risk threshold, else ``super-active``
if ``expected`` over ``super_active_window`` time units is at least
``super_active_min_purchases``, else ``active``.
"""

from __future__ import annotations

from typing import Any

import ibis.expr.types as ir
import numpy as np
import pandas as pd

from crm_helpers.segments.analysis import STATES, ModelFit, fit_models
from crm_helpers.segments.core import as_day, btyd_summary
from crm_helpers.segments.models import BetaGeoFitter

__all__ = [
    "GROUPS",
    "check_thresholds",
    "choose_thresholds",
    "model_scores",
    "state_table",
    "threshold_for_rate",
]

#: Customer groups with their own thresholds, and the score each is judged on.
GROUPS: dict[str, str] = {"repeat": "p_alive", "one_time": "p_buy"}
_KEYS = ["frequency", "recency", "T"]


def model_scores(bgf: BetaGeoFitter, stats: pd.DataFrame, window: float) -> pd.DataFrame:
    """``stats`` (``frequency, recency, T``, ...) with ``p_alive, p_buy, expected, group, score``.

    ``window`` is in the model's time unit. Shapes: one output row per input row.
    """
    if not window > 0:
        raise ValueError(f"the state window must be > 0 time units, got {window!r}")
    x, tx, T = (stats[k].to_numpy(dtype=float) for k in _KEYS)
    p = bgf.params_
    p_alive = bgf.conditional_probability_alive(x, tx, T)
    p_buy = p_alive * (1.0 - ((p.alpha + T) / (p.alpha + T + window)) ** (p.r + x))
    out = stats.copy()
    out["p_alive"] = p_alive
    out["p_buy"] = p_buy
    out["expected"] = bgf.conditional_expected_purchases(window, x, tx, T)
    out["group"] = np.where(x > 0, "repeat", "one_time")
    out["score"] = np.where(x > 0, p_alive, p_buy)
    return out


def threshold_for_rate(
    score: np.ndarray, inactive: np.ndarray, n: np.ndarray, target: float
) -> float | None:
    """Largest score whose isotonic-calibrated inactivity rate is >= ``target``; None if none.

    ``score``, ``inactive`` (0/1 or a rate) and ``n`` (weights) have shape (m,).
    """
    score, inactive, n = (np.asarray(v, dtype=float) for v in (score, inactive, n))
    keep = n > 0
    if not keep.any():
        return None
    score, inactive, n = score[keep], inactive[keep], n[keep]
    from sklearn.isotonic import IsotonicRegression  # at call time: ~1.5 s of import

    iso = IsotonicRegression(increasing=False, y_min=0.0, y_max=1.0, out_of_bounds="clip")
    fitted = iso.fit(score, inactive, sample_weight=n).predict(score)
    ok = score[fitted >= target - 1e-12]
    return float(ok.max()) if len(ok) else None


def _flag(score: np.ndarray, t: float | None) -> np.ndarray:
    return np.zeros(len(score), dtype=bool) if t is None else score <= t


def _precision_recall(flag: np.ndarray, inactive: np.ndarray, n: np.ndarray) -> dict[str, float]:
    flagged = float(np.dot(flag, n))
    hit = float(np.dot(flag * inactive, n))
    total = float(np.dot(inactive, n))
    return {
        "customers": float(n.sum()),
        "flagged": flagged,
        "precision": hit / flagged if flagged else float("nan"),
        "recall": hit / total if total else float("nan"),
    }


def _flags(scored: pd.DataFrame, thresholds: dict[str, Any], state: str) -> np.ndarray:
    flag = np.zeros(len(scored), dtype=bool)
    for g in GROUPS:
        in_g = (scored["group"] == g).to_numpy()
        flag |= in_g & _flag(scored["score"].to_numpy(), thresholds[g][state])
    return flag


def _evaluate(scored: pd.DataFrame, thresholds: dict[str, Any]) -> dict[str, Any]:
    """Precision / recall of the churned and churned-or-dormant flags, overall and per group."""
    inactive = (scored["frequency_holdout"].to_numpy() == 0).astype(float)
    n = scored["n"].to_numpy(dtype=float)
    out: dict[str, Any] = {}
    for state in ("churned", "dormant-risk"):
        flag = _flags(scored, thresholds, state)
        res = {"all": _precision_recall(flag, inactive, n)}
        for g in GROUPS:
            m = (scored["group"] == g).to_numpy()
            res[g] = _precision_recall(flag[m], inactive[m], n[m])
        out[state] = res
    return out


def _window_stats(
    orders: ir.Table, start: Any, days: int, time_unit_days: float, bgf: BetaGeoFitter | None
) -> tuple[pd.DataFrame, BetaGeoFitter]:
    """Distinct (frequency, recency, T, frequency_holdout) at ``start`` with a ``days`` holdout."""
    end = (pd.Timestamp(as_day(start)) + pd.Timedelta(days=int(days))).date()
    if bgf is None:
        fit = fit_models(orders, end, time_unit_days=time_unit_days, calibration_end=start,
                         spend=False)  # fmt: skip
        return fit.stats, fit.bgnbd
    s = btyd_summary(orders, end, time_unit_days=time_unit_days, calibration_end=start)
    keys = [*_KEYS, "frequency_holdout"]
    return s.group_by(keys).agg(n=s.user_id.count()).to_pandas(), bgf


def choose_thresholds(
    orders: ir.Table,
    calibration_end: Any,
    window_days: int,
    *,
    time_unit_days: float = 7.0,
    churn_rate: float = 0.9,
    dormant_rate: float = 0.7,
) -> dict[str, Any]:
    """Thresholds per group chosen inside the calibration period (see the module docstring).

    Returns
    -------
    dict
        ``inner_end`` (ISO date), ``window_days``, ``churn_rate``, ``dormant_rate``,
        ``repeat`` / ``one_time``: ``{"churned": t or None, "dormant-risk": t or None,
        "score": name}``, and ``inner``: the inner split's precision / recall (as
        :func:`check_thresholds`).
    """
    for name, v in (("churn_precision", churn_rate), ("dormant_precision", dormant_rate)):
        if not 0.0 < v <= 1.0:
            raise ValueError(f"{name} must be in (0, 1], got {v!r}")
    if dormant_rate > churn_rate:
        raise ValueError(
            f"dormant_precision ({dormant_rate}) must not exceed churn_precision ({churn_rate}): "
            "dormant-risk is the milder state"
        )
    if not (isinstance(window_days, int | np.integer) and window_days >= 1):
        raise ValueError(
            f"the state window must be a whole number of days >= 1, got {window_days!r}"
        )
    inner_end = (pd.Timestamp(as_day(calibration_end)) - pd.Timedelta(days=int(window_days))).date()
    try:
        stats, bgf = _window_stats(orders, inner_end, window_days, time_unit_days, None)
    except ValueError as exc:
        raise ValueError(
            f"choosing the model's state thresholds needs customers and repeat purchases before "
            f"{inner_end} (calibration_end {as_day(calibration_end)} minus the {window_days}-day "
            f"window): move calibration_end later or shorten model_horizon_days ({exc})"
        ) from exc
    scored = model_scores(bgf, stats, window_days / time_unit_days)
    out: dict[str, Any] = {
        "inner_end": inner_end.isoformat(),
        "window_days": int(window_days),
        "churn_rate": churn_rate,
        "dormant_rate": dormant_rate,
    }
    inactive = (scored["frequency_holdout"].to_numpy() == 0).astype(float)
    for g, score_name in GROUPS.items():
        m = (scored["group"] == g).to_numpy()
        args = (scored["score"].to_numpy()[m], inactive[m], scored["n"].to_numpy()[m])
        churn = threshold_for_rate(*args, churn_rate)
        dormant = threshold_for_rate(*args, dormant_rate)
        if churn is not None and (dormant is None or dormant < churn):
            dormant = churn
        out[g] = {"churned": churn, "dormant-risk": dormant, "score": score_name}
    out["inner"] = _evaluate(scored, out)
    return out


def check_thresholds(
    orders: ir.Table, cal_fit: ModelFit, thresholds: dict[str, Any]
) -> dict[str, Any]:
    """The thresholds on the holdout: the calibration fit's flags vs the next window's activity.

    ``cal_fit`` is the model fitted at ``calibration_end`` (``fit_with_holdout``); the holdout
    must be at least ``thresholds["window_days"]`` long. Returns ``{"churned": {"all",
    "repeat", "one_time"}, "dormant-risk": {...}}``, each ``customers, flagged, precision,
    recall`` ("dormant-risk" flags churned or dormant-risk customers).
    """
    cal = as_day(cal_fit.extra["calibration_end"])
    days = int(thresholds["window_days"])
    if (pd.Timestamp(as_day(cal_fit.observation_end)) - pd.Timestamp(cal)).days < days:
        raise ValueError(f"the holdout after {cal} is shorter than the {days}-day state window")
    stats, bgf = _window_stats(orders, cal, days, cal_fit.time_unit_days, cal_fit.bgnbd)
    return _evaluate(model_scores(bgf, stats, days / cal_fit.time_unit_days), thresholds)


def state_table(
    fit: ModelFit,
    thresholds: dict[str, Any],
    *,
    super_active_window: float = 4.0,
    super_active_min_purchases: float = 1.0,
) -> pd.DataFrame:
    """Model state of every distinct customer history at the fit's observation end.

    Returns
    -------
    pandas.DataFrame
        One row per distinct ``(frequency, recency, T)``: those, ``n``, ``p_alive``, ``p_buy``,
        ``expected`` (over the thresholds' window), ``group``, ``score``, ``state``.
    """
    s = fit.stats.groupby(_KEYS, as_index=False)["n"].sum()
    scored = model_scores(fit.bgnbd, s, thresholds["window_days"] / fit.time_unit_days)
    x, tx, T = (s[k].to_numpy(dtype=float) for k in _KEYS)
    busy = fit.bgnbd.conditional_expected_purchases(super_active_window, x, tx, T)
    churned = _flags(scored, thresholds, "churned")
    dormant = _flags(scored, thresholds, "dormant-risk")
    scored["state"] = np.where(
        churned,
        "churned",
        np.where(
            dormant, "dormant-risk",
            np.where(busy >= super_active_min_purchases, "super-active", "active"),
        ),
    )  # fmt: skip
    return scored


def state_summary(states: pd.DataFrame) -> pd.DataFrame:
    """Customers per model state (all of :data:`STATES`): ``state, customers, share,
    mean_p_alive, mean_p_buy, repeat_buyers``."""
    df = states.assign(
        pa=states["p_alive"] * states["n"],
        pb=states["p_buy"] * states["n"],
        rep=(states["group"] == "repeat") * states["n"],
    )
    g = df.groupby("state")[["n", "pa", "pb", "rep"]].sum().reindex(list(STATES)).fillna(0.0)
    total = g["n"].sum()
    nz = g["n"].where(g["n"] > 0)
    return pd.DataFrame(
        {
            "state": list(STATES),
            "customers": g["n"].astype("int64").to_numpy(),
            "share": (g["n"] / total).to_numpy() if total else np.nan,
            "mean_p_alive": (g["pa"] / nz).to_numpy(),
            "mean_p_buy": (g["pb"] / nz).to_numpy(),
            "repeat_buyers": g["rep"].astype("int64").to_numpy(),
        }
    )
