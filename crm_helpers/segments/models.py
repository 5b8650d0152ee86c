"""Buy-till-you-die models fitted by maximum likelihood (scipy), sklearn-style.

:class:`BetaGeoFitter` is the BG/NBD model (Fader, Hardie & Lee 2005, "Counting Your
Customers the Easy Way"): while alive a customer buys as a Poisson process with rate
``lambda ~ Gamma(r, alpha)`` and after each purchase drops out with probability
``p ~ Beta(a, b)``. :class:`GammaGammaFitter` is the spend model of Fader, Hardie & Lee
(2005, "RFM and CLV: Using Iso-Value Curves"): a customer's transaction values are
``Gamma(p, nu)`` with ``nu ~ Gamma(q, gamma)`` (``v`` here, as lifetimes names it).

Both fit on sufficient statistics: the customer summary of
:func:`crm_helpers.segments.core.btyd_summary` or, with ``weights``, its distinct rows and
their counts (the likelihood is a weighted sum). The log-likelihoods are written in log
space (``gammaln``, ``logaddexp``) and minimised over log-parameters with L-BFGS-B (BG/NBD with
its analytic gradient; Nelder-Mead from there if it stalls), so the fit is stable for large counts; terms that depend on the
frequency alone are evaluated once per distinct frequency. ``fit`` returns ``self``;
fitted attributes end in ``_`` (``params_``, ``log_likelihood_``, ``n_customers_``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy import optimize
from scipy.special import digamma, gammaln, hyp2f1

__all__ = ["BetaGeoFitter", "BGNBDParams", "GammaGammaFitter", "GammaGammaParams"]


@dataclass(frozen=True)
class BGNBDParams:
    """Fitted BG/NBD parameters (time in the summary's unit)."""

    r: float
    alpha: float
    a: float
    b: float


@dataclass(frozen=True)
class GammaGammaParams:
    """Fitted Gamma-Gamma parameters (``v`` is the paper's gamma)."""

    p: float
    q: float
    v: float


def _arrays(*xs: ArrayLike) -> list[np.ndarray]:
    return [np.asarray(x, dtype=float) for x in xs]


def _weights(w: ArrayLike | None, n: int) -> np.ndarray:
    if w is None:
        return np.ones(n)
    w = np.asarray(w, dtype=float)
    if w.shape != (n,) or (w < 0).any():
        raise ValueError("weights must be one non-negative number per row")
    return w


def _minimise(nll, x0: np.ndarray, jac: bool = False) -> optimize.OptimizeResult:
    opts = {"ftol": 1e-14, "gtol": 1e-9, "maxiter": 2000}
    best = optimize.minimize(nll, x0, method="L-BFGS-B", jac=jac, options=opts)
    if not best.success:  # the line search stalled: a derivative-free search from there
        f = (lambda v: nll(v)[0]) if jac else nll
        best = optimize.minimize(
            f,
            best.x,
            method="Nelder-Mead",
            options={"xatol": 1e-8, "fatol": 1e-13, "maxiter": 4000},
        )
        best.fun = f(best.x)
    if not np.isfinite(best.fun):
        raise RuntimeError("the likelihood could not be evaluated at the start values")
    return best


def bgnbd_log_likelihood(
    params: ArrayLike,
    frequency: ArrayLike,
    recency: ArrayLike,
    T: ArrayLike,
    _unique: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """Per-customer BG/NBD log-likelihood; shape of ``frequency``.

    ``params`` = ``(r, alpha, a, b)``; ``frequency`` = repeat purchases ``x``, ``recency`` =
    ``t_x``, ``T`` as in :func:`crm_helpers.segments.core.btyd_summary`. ``_unique`` (the
    distinct frequencies and the inverse index, ``np.unique(x, return_inverse=True)``) saves
    recomputing it in a fit.
    """
    r, alpha, a, b = (float(v) for v in params)
    x, t_x, T = _arrays(frequency, recency, T)
    ux, inv = _unique if _unique is not None else np.unique(x, return_inverse=True)
    a12 = (
        gammaln(r + ux) - gammaln(r) + r * np.log(alpha)
        + gammaln(a + b) + gammaln(b + ux) - gammaln(b) - gammaln(a + b + ux)
    )[inv]  # fmt: skip
    a3 = -(r + x) * np.log(alpha + T)
    with np.errstate(divide="ignore"):
        a4 = np.where(
            x > 0,
            np.log(a) - np.log(np.where(x > 0, b + x - 1, 1.0)) - (r + x) * np.log(alpha + t_x),
            -np.inf,
        )
    return a12 + np.logaddexp(a3, a4)


def bgnbd_log_likelihood_and_gradient(
    params: ArrayLike,
    frequency: ArrayLike,
    recency: ArrayLike,
    T: ArrayLike,
    weights: ArrayLike | None = None,
    _unique: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[float, np.ndarray]:
    """Weighted total BG/NBD log-likelihood and its gradient in ``(r, alpha, a, b)``, shape (4,).

    With ``L = logaddexp(A3, A4)`` and the weights ``w3 = exp(A3 - L)``, ``w4 = exp(A4 - L)``
    of the two terms (FHL 2005, eq. 6 in log space):
    ``d/dr = psi(r+x) - psi(r) + ln(alpha) - w3 ln(alpha+T) - w4 ln(alpha+t_x)``,
    ``d/dalpha = r/alpha - (r+x) (w3/(alpha+T) + w4/(alpha+t_x))``,
    ``d/da = psi(a+b) - psi(a+b+x) + w4/a``,
    ``d/db = psi(a+b) + psi(b+x) - psi(b) - psi(a+b+x) - w4/(b+x-1)``.
    """
    r, alpha, a, b = (float(v) for v in params)
    x, t_x, T_ = _arrays(frequency, recency, T)
    w = np.ones_like(x) if weights is None else np.asarray(weights, dtype=float)
    ux, inv = _unique if _unique is not None else np.unique(x, return_inverse=True)
    ll = bgnbd_log_likelihood((r, alpha, a, b), x, t_x, T_, (ux, inv))
    pos = x > 0
    bx1 = np.where(pos, b + x - 1, 1.0)
    a3 = -(r + x) * np.log(alpha + T_)
    with np.errstate(divide="ignore"):
        a4 = np.where(pos, np.log(a) - np.log(bx1) - (r + x) * np.log(alpha + t_x), -np.inf)
    big = np.logaddexp(a3, a4)
    w3, w4 = np.exp(a3 - big), np.exp(a4 - big)
    g_r = (digamma(r + ux) - digamma(r))[inv] + np.log(alpha)
    g_r = g_r - w3 * np.log(alpha + T_) - w4 * np.log(alpha + t_x)
    g_alpha = r / alpha - (r + x) * (w3 / (alpha + T_) + w4 / (alpha + t_x))
    g_a = (digamma(a + b) - digamma(a + b + ux))[inv] + w4 / a
    g_b = (digamma(a + b) + digamma(b + ux) - digamma(b) - digamma(a + b + ux))[inv] - w4 / bx1
    grad = np.array([np.dot(w, g) for g in (g_r, g_alpha, g_a, g_b)])
    return float(np.dot(w, ll)), grad


def _check_summary(x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> None:
    if not (len(x) == len(t_x) == len(T)) or len(x) == 0:
        raise ValueError("frequency, recency and T must be non-empty and of equal length")
    if (x < 0).any() or (t_x < 0).any() or (t_x > T + 1e-9).any():
        raise ValueError("need frequency >= 0 and 0 <= recency <= T for every customer")
    if ((x == 0) & (t_x != 0)).any():
        raise ValueError("customers with frequency 0 must have recency 0")


class BetaGeoFitter:
    """BG/NBD by maximum likelihood.

    Parameters
    ----------
    penalizer_coef : float, default 0.0
        L2 penalty on the parameters (lifetimes' ``penalizer_coef``); 0 is the plain MLE.

    Attributes
    ----------
    params_ : BGNBDParams
    log_likelihood_ : float
        Total log-likelihood at the optimum (weighted).
    n_customers_ : float
        Number of customers fitted (sum of weights).
    """

    def __init__(self, penalizer_coef: float = 0.0) -> None:
        self.penalizer_coef = penalizer_coef

    def fit(
        self,
        frequency: ArrayLike,
        recency: ArrayLike,
        T: ArrayLike,
        weights: ArrayLike | None = None,
    ) -> BetaGeoFitter:
        """Fit on per-customer (or, with ``weights``, distinct weighted) rows of shape (n,)."""
        x, t_x, T_ = _arrays(frequency, recency, T)
        _check_summary(x, t_x, T_)
        w = _weights(weights, len(x))
        n = w.sum()
        if x.max() == 0:
            raise ValueError("BG/NBD needs some repeat purchases (every frequency is 0)")
        scale = float(np.max(T_)) or 1.0  # fit alpha on T's scale, then scale back
        uniq = np.unique(x, return_inverse=True)

        def nll(logp: np.ndarray) -> tuple[float, np.ndarray]:
            with np.errstate(over="ignore", under="ignore"):
                p = np.exp(logp)
            full = np.array([p[0], p[1] * scale, p[2], p[3]])
            if not (np.isfinite(full).all() and (full > 0).all()):
                # a step the line search took beyond the floats (a parameter under- or
                # overflowed to 0 or inf): no likelihood there, the search steps back
                return 1e100, np.zeros(4)
            ll, g = bgnbd_log_likelihood_and_gradient(full, x, t_x, T_, w, uniq)
            pen = self.penalizer_coef * float(np.sum(p**2))
            v = -ll / n + pen
            grad = -(g * full) / n + 2 * self.penalizer_coef * p**2  # chain rule: d/dlog p
            if not (np.isfinite(v) and np.isfinite(grad).all()):
                return 1e100, np.zeros(4)
            return v, grad

        res = _minimise(nll, np.log([1.0, 1.0, 1.0, 1.0]), jac=True)
        r, alpha, a, b = np.exp(res.x)
        self.params_ = BGNBDParams(float(r), float(alpha * scale), float(a), float(b))
        self.log_likelihood_ = float(np.dot(w, bgnbd_log_likelihood(self._p, x, t_x, T_)))
        self.n_customers_ = float(n)
        return self

    @property
    def _p(self) -> tuple[float, float, float, float]:
        if not hasattr(self, "params_"):
            raise RuntimeError("call fit() first")
        p = self.params_
        return p.r, p.alpha, p.a, p.b

    def conditional_probability_alive(
        self, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
    ) -> np.ndarray:
        """P(alive at T | x, t_x, T), shape of ``frequency``; 1 when ``frequency == 0``."""
        r, alpha, a, b = self._p
        x, t_x, T_ = _arrays(frequency, recency, T)
        with np.errstate(divide="ignore", invalid="ignore"):
            log_ratio = (
                np.log(a) - np.log(np.where(x > 0, b + x - 1, 1.0))
                + (r + x) * (np.log(alpha + T_) - np.log(alpha + t_x))
            )  # fmt: skip
        return np.where(x > 0, 1.0 / (1.0 + np.exp(log_ratio)), 1.0)

    def expected_purchases(self, t: ArrayLike) -> np.ndarray:
        """E[X(t)]: expected purchases of a new customer in ``t`` units after the first."""
        r, alpha, a, b = self._p
        t = np.asarray(t, dtype=float)
        hyp = hyp2f1(r, b, a + b - 1, t / (alpha + t))
        return (a + b - 1) / (a - 1) * (1 - (alpha / (alpha + t)) ** r * hyp)

    def conditional_expected_purchases(
        self, t: ArrayLike, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
    ) -> np.ndarray:
        """E[Y(t) | x, t_x, T]: expected repeat purchases in the next ``t`` units; shape (n,)."""
        r, alpha, a, b = self._p
        t = np.asarray(t, dtype=float)
        x, t_x, T_ = _arrays(frequency, recency, T)
        hyp = hyp2f1(r + x, b + x, a + b + x - 1, t / (alpha + T_ + t))
        first = (a + b + x - 1) / (a - 1)
        second = 1 - ((alpha + T_) / (alpha + T_ + t)) ** (r + x) * hyp
        return first * second * self.conditional_probability_alive(x, t_x, T_)


def gamma_gamma_log_likelihood(
    params: ArrayLike, frequency: ArrayLike, monetary_value: ArrayLike
) -> np.ndarray:
    """Per-customer Gamma-Gamma log-likelihood of the mean spend ``m`` over ``x`` purchases.

    The density of the mean of ``x`` Gamma(p, nu) values, integrated over nu ~ Gamma(q, v);
    up to a term that does not depend on the parameters it is the lifetimes / paper form.
    """
    p, q, v = (float(u) for u in params)
    x, m = _arrays(frequency, monetary_value)
    return (
        gammaln(p * x + q) - gammaln(p * x) - gammaln(q) + q * np.log(v)
        + (p * x - 1) * np.log(m) + p * x * np.log(x) - (p * x + q) * np.log(x * m + v)
    )  # fmt: skip


class GammaGammaFitter:
    """Gamma-Gamma spend model by maximum likelihood (customers with repeat purchases).

    Attributes
    ----------
    params_ : GammaGammaParams
    log_likelihood_ : float
    n_customers_ : float
        Customers used (``frequency > 0`` and ``monetary_value > 0``; weighted).
    """

    def __init__(self, penalizer_coef: float = 0.0) -> None:
        self.penalizer_coef = penalizer_coef

    def fit(
        self, frequency: ArrayLike, monetary_value: ArrayLike, weights: ArrayLike | None = None
    ) -> GammaGammaFitter:
        """Fit on rows of shape (n,); rows with ``frequency == 0`` or ``monetary_value <= 0``
        are left out (the model is for positive spend of repeat buyers)."""
        x, m = _arrays(frequency, monetary_value)
        w = _weights(weights, len(x))
        keep = (x > 0) & (m > 0)
        x, m, w = x[keep], m[keep], w[keep]
        if w.sum() == 0:
            raise ValueError("Gamma-Gamma needs customers with repeat purchases and positive spend")
        n = w.sum()
        scale = float(np.average(m, weights=w))

        def nll(logp: np.ndarray) -> float:
            p, q, v = np.exp(logp)
            ll = gamma_gamma_log_likelihood((p, q, v * scale), x, m)
            pen = self.penalizer_coef * float(p**2 + q**2 + v**2)
            val = -(float(np.dot(w, ll)) / n) + pen
            return val if np.isfinite(val) else 1e100

        res = _minimise(nll, np.log([1.0, 1.0, 1.0]))
        p, q, v = np.exp(res.x)
        self.params_ = GammaGammaParams(float(p), float(q), float(v * scale))
        self.log_likelihood_ = float(np.dot(w, gamma_gamma_log_likelihood(
            (self.params_.p, self.params_.q, self.params_.v), x, m)))  # fmt: skip
        self.n_customers_ = float(n)
        return self

    def conditional_expected_average_profit(
        self, frequency: ArrayLike, monetary_value: ArrayLike
    ) -> np.ndarray:
        """E[spend per purchase | x, m], shape (n,); the population mean when ``x == 0``."""
        if not hasattr(self, "params_"):
            raise RuntimeError("call fit() first")
        p, q, v = self.params_.p, self.params_.q, self.params_.v
        x, m = _arrays(frequency, monetary_value)
        m = np.where(x > 0, np.maximum(m, 0.0), 0.0)
        return p * (v + x * m) / (p * x + q - 1)

    def customer_lifetime_value(
        self,
        bgf: BetaGeoFitter,
        frequency: ArrayLike,
        recency: ArrayLike,
        T: ArrayLike,
        monetary_value: ArrayLike,
        horizon: float,
        steps: int = 12,
        discount_rate: float = 0.0,
    ) -> np.ndarray:
        """Expected revenue over the next ``horizon`` time units, shape (n,).

        The horizon is cut into ``steps`` equal parts; part ``i``'s expected purchases
        (difference of :meth:`BetaGeoFitter.conditional_expected_purchases`) times the
        expected spend are discounted by ``(1 + discount_rate) ** i``.
        """
        if not horizon > 0 or steps < 1:
            raise ValueError("horizon must be > 0 and steps >= 1")
        spend = self.conditional_expected_average_profit(frequency, monetary_value)
        total = np.zeros_like(spend, dtype=float)
        prev = np.zeros_like(total)
        for i in range(1, steps + 1):
            cum = bgf.conditional_expected_purchases(horizon * i / steps, frequency, recency, T)
            total += (cum - prev) * spend / (1 + discount_rate) ** i
            prev = cum
        return total
