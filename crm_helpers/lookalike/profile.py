"""Understanding a lookalike audience: profiles, score drivers, score distribution.

- :func:`profile_table`: per feature, the mean among the seeds, the lookalikes and the
  population, and each group's **index** vs the population: ``100 * group mean /
  population mean`` (100 = like everyone; NaN when the population mean is 0). For
  one-hot attributes (``attr:col=value``) the mean is the share of users with that value.
- :func:`top_differences`: the features whose lookalike index is furthest from 100 on a
  log scale (``|ln(index / 100)|``), among features with a population mean above 0 and at
  least ``min_share`` of the population showing them for shares / one-hot columns.
- :func:`driver_table`: what drives the score — the PU model's coefficients on standardised
  features (a 1-sd higher feature multiplies the odds by ``exp(weight)``), or the seed
  centroid's coordinates (in population standard deviations) for the similarity model.
- :func:`score_distribution`: histogram counts of the scores, population vs audience.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["driver_table", "profile_table", "score_distribution", "top_differences"]


def profile_table(X: np.ndarray, names: list[str], masks: dict[str, np.ndarray]) -> pd.DataFrame:
    """Means and indices per feature.

    Parameters
    ----------
    X : ndarray, shape (n_users, n_features)
    names : list of str, length n_features
    masks : dict
        ``{"seeds": bool (n_users,), "lookalikes": …, "population": …}``.

    Returns
    -------
    pandas.DataFrame, shape (n_features, 1 + 2 * len(masks) - 1)
        ``feature``, ``<group>_mean`` for each group, ``<group>_index`` for each group
        other than ``population``.
    """
    X = np.asarray(X, dtype=np.float64)
    out = pd.DataFrame({"feature": list(names)})
    for g, m in masks.items():
        m = np.asarray(m, dtype=bool)
        out[f"{g}_mean"] = X[m].mean(axis=0) if m.any() else np.nan
    pop = out["population_mean"].to_numpy()
    for g in masks:
        if g != "population":
            with np.errstate(divide="ignore", invalid="ignore"):
                out[f"{g}_index"] = np.where(pop != 0, 100 * out[f"{g}_mean"] / pop, np.nan)
    return out


def top_differences(
    profile: pd.DataFrame, n: int = 5, group: str = "lookalikes", min_share: float = 0.02
) -> pd.DataFrame:
    """The ``n`` features whose ``group`` index is furthest from 100 (log scale)."""
    p = profile.copy()
    share_like = p["feature"].str.contains(":") & ~p["feature"].str.startswith("count:")
    ok = (p["population_mean"] > 0) & (~share_like | (p["population_mean"] >= min_share))
    idx = p[f"{group}_index"]
    ok &= idx.notna() & (idx > 0)
    p = p[ok].assign(distance=np.abs(np.log(idx[ok] / 100)))
    return (
        p.sort_values(["distance", "feature"], ascending=[False, True])
        .head(n)
        .drop(columns="distance")
        .reset_index(drop=True)
    )


def driver_table(model, names: list[str]) -> pd.DataFrame:
    """``feature, weight`` sorted by ``|weight|`` (empty for the random baseline).

    PU model: standardised coefficients; similarity model: the (first) seed centroid's
    standardised coordinates times its norm (the seed mean's distance from the population
    mean in population standard deviations, direction only for k > 1).
    """
    if hasattr(model, "feature_importance"):
        w = model.feature_importance()
    elif hasattr(model, "centroids_"):
        w = model.centroids_[0]
    else:
        return pd.DataFrame({"feature": [], "weight": []})
    df = pd.DataFrame({"feature": list(names), "weight": np.asarray(w, dtype=float)})
    order = np.argsort(-np.abs(df["weight"].to_numpy()), kind="stable")
    return df.iloc[order].reset_index(drop=True)


def score_distribution(scores: np.ndarray, in_audience: np.ndarray, bins: int = 40) -> pd.DataFrame:
    """Histogram of ``scores`` (equal-width bins over their range).

    Returns
    -------
    pandas.DataFrame, shape (bins, 4)
        ``left``, ``right``, ``population`` (all users), ``audience`` (users in it).
    """
    s = np.asarray(scores, dtype=np.float64)
    lo, hi = (float(s.min()), float(s.max())) if len(s) else (0.0, 1.0)
    if hi <= lo:
        hi = lo + 1.0
    edges = np.linspace(lo, hi, bins + 1)
    pop, _ = np.histogram(s, edges)
    aud, _ = np.histogram(s[np.asarray(in_audience, dtype=bool)], edges)
    return pd.DataFrame(
        {"left": edges[:-1], "right": edges[1:], "population": pop, "audience": aud}
    )
