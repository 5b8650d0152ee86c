"""Model-backed analyses of the customer base: BG/NBD + Gamma-Gamma fits, the holdout check
and CLV.

Semantics
---------
*Fit* (:func:`fit_models`): the BTYD summary of :func:`~crm_helpers.segments.core.btyd_summary`
at ``observation_end`` is grouped in the engine by ``(frequency, recency, T)`` (its
sufficient statistics for BG/NBD, with counts as weights); Gamma-Gamma is fitted on the
distinct ``(frequency, monetary_value)`` of customers with repeat purchases and positive
mean spend. This is the path the notebook uses, and the one the CDNOW golden test checks.

*Holdout* (:func:`holdout_check`): the models are fitted at ``calibration_end`` on the
customers whose first purchase is on or before it; each one's expected repeat purchases in
``(calibration_end, observation_end]`` is compared with the actual number of purchase days
there. By calibration frequency bucket (0, 1, ..., 6, "7+"): customers, mean predicted,
mean actual; ``mae`` is the mean absolute error per customer over all of them.

The model's health states (P(alive) thresholds chosen on the calibration period and checked
on the holdout) are in :mod:`crm_helpers.segments.model_states`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import ibis.expr.types as ir
import numpy as np
import pandas as pd

from crm_helpers.segments.core import as_day, btyd_summary
from crm_helpers.segments.models import BetaGeoFitter, GammaGammaFitter

__all__ = [
    "ModelFit",
    "STATES",
    "fit_models",
    "clv_table",
    "fit_with_holdout",
    "holdout_check",
    "model_missing",
]

#: Health states, from the healthiest.
STATES: tuple[str, ...] = ("super-active", "active", "dormant-risk", "churned")

_BGNBD_KEYS = ["frequency", "recency", "T"]


@dataclass
class ModelFit:
    """Fitted BG/NBD (and Gamma-Gamma when there is repeat spend) with their inputs."""

    bgnbd: BetaGeoFitter
    gamma_gamma: GammaGammaFitter | None
    stats: pd.DataFrame  # distinct (frequency, recency, T[, frequency_holdout]) and n
    spend: pd.DataFrame  # distinct (frequency, monetary_value) of repeat buyers and n
    observation_end: Any
    time_unit_days: float
    extra: dict = field(default_factory=dict)

    def params(self) -> dict[str, dict[str, float] | None]:
        """``{"bgnbd": {r, alpha, a, b}, "gamma_gamma": {p, q, v} or None}``."""
        b = self.bgnbd.params_
        g = self.gamma_gamma.params_ if self.gamma_gamma is not None else None
        return {
            "bgnbd": {"r": b.r, "alpha": b.alpha, "a": b.a, "b": b.b},
            "gamma_gamma": None if g is None else {"p": g.p, "q": g.q, "v": g.v},
        }


def _grouped(summary: ir.Table, keys: list[str]) -> pd.DataFrame:
    """Distinct ``keys`` rows with their customer count ``n``, sorted by ``keys``: the engine
    returns groups in any order, and the fits and totals summed over these rows in that order
    (float addition is not associative) changed in the last digits from run to run."""
    out = summary.group_by(keys).agg(n=summary.user_id.count()).to_pandas()
    return out.sort_values(keys, kind="stable").reset_index(drop=True)


#: L2 penalty of the refit when the plain BG/NBD maximum likelihood is degenerate.
DEGENERATE_PENALIZER = 0.001


def _degenerate(p) -> bool:
    """Whether fitted BG/NBD parameters ran off to the boundary (non-finite or above 1e6)."""
    vals = np.array([p.r, p.alpha, p.a, p.b], dtype=float)
    return not np.isfinite(vals).all() or bool((vals > 1e6).any())


def fit_models(
    orders: ir.Table,
    observation_end: Any,
    *,
    time_unit_days: float = 7.0,
    calibration_end: Any = None,
    spend: bool = True,
) -> ModelFit:
    """Fit BG/NBD and Gamma-Gamma on the customers' summary at ``observation_end``.

    ``spend=False`` skips Gamma-Gamma (``gamma_gamma`` is None).

    With ``calibration_end`` the models are fitted at ``calibration_end`` and the grouped
    statistics also carry ``frequency_holdout`` (see :func:`holdout_check`).

    Returns
    -------
    ModelFit
        ``stats`` has one row per distinct ``(frequency, recency, T[, frequency_holdout])``
        with its customer count ``n``; ``spend`` one per distinct ``(frequency,
        monetary_value)`` of repeat buyers with positive spend.
    """
    summary = btyd_summary(
        orders, observation_end, time_unit_days=time_unit_days, calibration_end=calibration_end
    )
    keys = _BGNBD_KEYS + (["frequency_holdout"] if calibration_end is not None else [])
    stats = _grouped(summary, keys)
    if stats.empty:
        raise ValueError(
            f"no customers with a purchase on or before {as_day(calibration_end or observation_end)}"
        )
    by = stats.groupby(_BGNBD_KEYS, as_index=False)["n"].sum()
    bgf = BetaGeoFitter().fit(by["frequency"], by["recency"], by["T"], weights=by["n"])
    extra: dict = {}
    if _degenerate(bgf.params_):
        # the maximum likelihood lies on the boundary (no heterogeneity to estimate, as on a
        # few dozen customers): its parameters run off to ~1e18 and every prediction is NaN.
        # Refit with lifetimes' usual small L2 penalty, and say so.
        bgf = BetaGeoFitter(penalizer_coef=DEGENERATE_PENALIZER).fit(
            by["frequency"], by["recency"], by["T"], weights=by["n"]
        )
        extra["bgnbd_note"] = (
            f"The plain BG/NBD fit on these {int(by['n'].sum()):,} customers ran off to the "
            "boundary (too few repeat purchases to tell customers apart), so the model was "
            f"refitted with a small L2 penalty ({DEGENERATE_PENALIZER}); read its predictions "
            "as rough."
        )
    ggf, values = None, pd.DataFrame(columns=["frequency", "monetary_value", "n"])
    if spend:
        rep = summary.filter((summary.frequency > 0) & (summary.monetary_value > 0))
        values = _grouped(rep, ["frequency", "monetary_value"])
        if len(values) >= 3:
            ggf = GammaGammaFitter().fit(
                values["frequency"], values["monetary_value"], weights=values["n"]
            )
    fit = ModelFit(bgf, ggf, stats, values, observation_end, float(time_unit_days), extra)
    fit.extra["summary"] = summary
    return fit


def holdout_check(fit: ModelFit) -> dict[str, Any]:
    """Predicted vs actual holdout purchases of a fit made with ``calibration_end``.

    Returns
    -------
    dict
        ``by_frequency`` (DataFrame: ``bucket, customers, predicted, actual``),
        ``mae`` (per customer), ``predicted_total``, ``actual_total``, ``customers``,
        ``duration`` (holdout length in time units).
    """
    s = fit.stats
    if "frequency_holdout" not in s:
        raise ValueError("the fit has no holdout: call fit_models(..., calibration_end=...)")
    obs = pd.Timestamp(as_day(fit.observation_end))
    cal = pd.Timestamp(as_day(fit.extra["calibration_end"]))
    duration = (obs - cal).days / fit.time_unit_days
    pred = fit.bgnbd.conditional_expected_purchases(duration, s["frequency"], s["recency"], s["T"])
    n = s["n"].to_numpy(dtype=float)
    actual = s["frequency_holdout"].to_numpy(dtype=float)
    bucket = np.minimum(s["frequency"].to_numpy(), 7)
    df = pd.DataFrame({"b": bucket, "n": n, "pn": pred * n, "an": actual * n})
    g = df.groupby("b", sort=True).sum()
    table = pd.DataFrame(
        {
            "bucket": [str(int(b)) if b < 7 else "7+" for b in g.index],
            "customers": g["n"].astype("int64").to_numpy(),
            "predicted": (g["pn"] / g["n"]).to_numpy(),
            "actual": (g["an"] / g["n"]).to_numpy(),
        }
    )
    out: dict[str, Any] = {
        "by_frequency": table,
        "mae": float(np.dot(np.abs(pred - actual), n) / n.sum()),
        "predicted_total": float(np.dot(pred, n)),
        "actual_total": float(np.dot(actual, n)),
        "customers": int(n.sum()),
        "duration": duration,
    }
    return out


def model_missing(
    orders: ir.Table, calibration_end: Any, window_days: int, time_unit_days: float = 7.0
) -> str | None:
    """Why the purchase model cannot run on these orders (a phrase for ``text.skipped``), or None.

    BG/NBD needs customers with repeat purchases (two or more purchase days) on or before the
    day its state thresholds are fitted, ``calibration_end - window_days``.
    """
    inner = (pd.Timestamp(as_day(calibration_end)) - pd.Timedelta(days=int(window_days))).date()
    s = btyd_summary(orders, inner, time_unit_days=time_unit_days)
    if int(s.filter(s.frequency > 0).count().execute()) > 0:
        return None
    return f"customers who bought on two or more days by {inner} (calibration_end minus the state window)"


def fit_with_holdout(
    orders: ir.Table, observation_end: Any, calibration_end: Any, *, time_unit_days: float = 7.0
) -> ModelFit:
    """:func:`fit_models` at ``calibration_end`` with the holdout to ``observation_end``."""
    fit = fit_models(
        orders, observation_end, time_unit_days=time_unit_days, calibration_end=calibration_end
    )
    fit.extra["calibration_end"] = as_day(calibration_end)
    return fit


def clv_table(fit: ModelFit, horizon: float, bins: int = 20) -> pd.DataFrame:
    """Expected revenue per customer over the next ``horizon`` time units, as a histogram.

    Per customer: BG/NBD expected purchases times the Gamma-Gamma expected spend given
    their repeat purchases (undiscounted), computed on the distinct ``(frequency, recency,
    T, monetary_value)`` rows of the fit's summary. Returns ``clv_low, clv_high, customers``
    (``bins`` equal-width bins) and the totals in ``attrs`` (``total``, ``mean``).
    """
    if fit.gamma_gamma is None:
        raise ValueError("CLV needs the Gamma-Gamma fit (no repeat buyers with positive spend)")
    if not horizon > 0:
        raise ValueError(f"horizon must be > 0, got {horizon!r}")
    s = _grouped(fit.extra["summary"], _BGNBD_KEYS + ["monetary_value"])
    spend = fit.gamma_gamma.conditional_expected_average_profit(s["frequency"], s["monetary_value"])
    e = fit.bgnbd.conditional_expected_purchases(horizon, s["frequency"], s["recency"], s["T"])
    clv = e * spend
    n = s["n"].to_numpy(dtype=float)
    counts, edges = np.histogram(clv, bins=bins, weights=n)
    out = pd.DataFrame({"clv_low": edges[:-1], "clv_high": edges[1:], "customers": counts})
    out.attrs.update(total=float(np.dot(clv, n)), mean=float(np.dot(clv, n) / n.sum()))
    return out
