"""Label leakage guards of a lookalike: no feature may see what defines the seed.

A held-out audit is only honest if the features cannot see the seed's definition: a feature
that counts the seed-defining events (or copies the seed list) ranks the held-out seeds at
the top because they *are* seeds, not because they look like them, and the audit then
reports a perfect model that finds nobody new. Two guards, applied in this order:

1. **Rule seeds** (``"<event> >= N in D days"``): the seed's own event rows are *excluded
   from every feature* — totals, per-event counts, recency, active days, category /
   platform / channel shares and time-of-day ratios are all computed without them, and a
   purchase seed counted on ``orders`` builds no order features
   (:func:`crm_helpers.lookalike.features.feature_spec`, ``exclude_events`` /
   ``exclude_orders``; the event names from
   :func:`crm_helpers.lookalike.seeds.defining_events`). Features are *not* cut at each
   seed's qualification time: a count over a window has no single moment for the users who
   never qualify, and a cut there would itself differ between seeds and the rest.
2. **Any seed** (a rule, a users column, an id file): a feature that is nearly a copy of the
   seed label — its univariate AUC for "seed vs the rest of the population" is above
   ``threshold`` (0.95) or below ``1 - threshold`` (a copy with the sign flipped) — is
   named in a warning and left out before any model is fitted (:func:`near_copies`, called
   by :func:`crm_helpers.lookalike.analysis.expand`).

The univariate AUC of a column is the Mann-Whitney probability that a random seed's value
is above a random non-seed's (ties count one half), computed exactly by one sort per column.
Above ``max_rows`` users per class (seeds, non-seeds) it is computed on a uniform random
sample of that many of each (seeded; the standard error of an AUC from 50,000 + 50,000
values is below 0.002, far below the distance between a near copy and a real feature).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["NEAR_COPY_AUC", "near_copies", "univariate_auc"]

#: Univariate AUC above which (or below one minus which) a feature is a near copy of the seed.
NEAR_COPY_AUC = 0.95


def univariate_auc(x: np.ndarray, positive: np.ndarray) -> float:
    """AUC of ``x`` alone for ``positive`` (Mann-Whitney, ties one half); NaN if one class.

    Parameters
    ----------
    x : ndarray, shape (n,)
    positive : ndarray of bool, shape (n,)
    """
    x = np.asarray(x)
    positive = np.asarray(positive, dtype=bool)
    pos, neg = np.sort(x[positive]), np.sort(x[~positive])  # sorted needles: faster search
    if not len(pos) or not len(neg):
        return float("nan")
    below = np.searchsorted(neg, pos, side="left")
    ties = np.searchsorted(neg, pos, side="right") - below
    return float((below.sum() + 0.5 * ties.sum()) / (len(pos) * len(neg)))


def _sample_rows(mask: np.ndarray, value: bool, k: int, rng) -> np.ndarray:
    """Sorted positions of ``k`` rows drawn uniformly without replacement among those where
    ``mask == value`` (all of them when at most ``k``).

    When such rows are common (a quarter or more), random positions are drawn and the
    matching ones kept (no pass building the 10M-entry index of all of them: ~0.3 s); the
    distinct positions so found are a uniformly random set, so ``k`` of them drawn
    uniformly are a uniform sample.
    """
    n = len(mask)
    hits = int(mask.sum()) if value else n - int(mask.sum())
    if hits <= k:
        return np.flatnonzero(mask == value)
    if 4 * hits < n:
        return np.sort(rng.choice(np.flatnonzero(mask == value), k, replace=False))
    picked = np.empty(0, dtype=np.int64)
    while len(picked) < k:
        draw = rng.integers(0, n, size=2 * k * n // hits + 16)
        picked = np.union1d(picked, draw[mask[draw] == value])
    return np.sort(rng.choice(picked, k, replace=False))


def near_copies(
    X: np.ndarray,
    names: list[str],
    seed_mask: np.ndarray,
    threshold: float = NEAR_COPY_AUC,
    max_rows: int = 50_000,
    random_state: int = 0,
) -> pd.DataFrame:
    """Features that are nearly a copy of the seed label (see the module docstring).

    Parameters
    ----------
    X : ndarray, shape (n_users, n_features)
    names : list of str
        Column names of ``X``.
    seed_mask : ndarray of bool, shape (n_users,)
    threshold : float in (0.5, 1]
        A column with AUC > threshold or AUC < 1 - threshold is a near copy.
    max_rows : int
        Users per class used at most (a seeded uniform sample above it).

    Returns
    -------
    pandas.DataFrame
        ``feature``, ``column`` (position in ``X``), ``auc``; one row per near copy, in
        column order (empty when none).
    """
    if not 0.5 < threshold <= 1:
        raise ValueError(f"the near-copy AUC threshold must be in (0.5, 1], got {threshold!r}")
    seed_mask = np.asarray(seed_mask, dtype=bool)
    rng = np.random.default_rng(random_state)
    rows_pos = _sample_rows(seed_mask, True, max_rows, rng)
    rows_neg = _sample_rows(seed_mask, False, max_rows, rng)
    out = []
    if len(rows_pos) and len(rows_neg):
        rows = np.r_[rows_pos, rows_neg]
        label = np.r_[np.ones(len(rows_pos), bool), np.zeros(len(rows_neg), bool)]
        sub = np.asarray(X)[rows]
        for j, name in enumerate(names):
            auc = univariate_auc(np.nan_to_num(np.ascontiguousarray(sub[:, j])), label)
            if auc > threshold or auc < 1 - threshold:
                out.append({"feature": name, "column": j, "auc": auc})
    return pd.DataFrame(out, columns=["feature", "column", "auc"])
