"""Shared statistics on sufficient statistics (counts), in the style of gbstats.

Small frozen dataclasses and pure, vectorised functions. Everything here works on counts
(successes, trials), never on event-level data: the engine aggregates, this module infers.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats as _st

__all__ = ["wilson_interval"]


def wilson_interval(
    successes: ArrayLike, n: ArrayLike, alpha: float = 0.05
) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval for a binomial proportion, vectorised.

    Parameters
    ----------
    successes : array_like of int
        Number of successes, broadcastable against ``n``.
    n : array_like of int
        Number of trials. Where ``n == 0`` the interval is ``(NaN, NaN)``.
    alpha : float, default 0.05
        Two-sided level; the interval has coverage ``1 - alpha``.

    Returns
    -------
    (low, high) : tuple of np.ndarray of float
        Arrays of the broadcast shape of ``successes`` and ``n`` (0-d for scalars).
        Matches ``statsmodels.stats.proportion.proportion_confint(method="wilson")``.
    """
    x = np.asarray(successes, dtype=float)
    nn = np.asarray(n, dtype=float)
    x, nn = np.broadcast_arrays(x, nn)
    z = _st.norm.isf(alpha / 2.0)
    z2 = z * z
    with np.errstate(divide="ignore", invalid="ignore"):
        p = x / nn
        denom = 1.0 + z2 / nn
        center = (p + z2 / (2.0 * nn)) / denom
        half = z / denom * np.sqrt(p * (1.0 - p) / nn + z2 / (4.0 * nn * nn))
        low = center - half
        high = center + half
    bad = ~(nn > 0)
    low = np.where(bad, np.nan, np.clip(low, 0.0, 1.0))
    high = np.where(bad, np.nan, np.clip(high, 0.0, 1.0))
    return low, high
