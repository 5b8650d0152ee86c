"""Behavioural clusters: per-user features in the engine, scaled, k-means (scikit-learn).

Semantics
---------
*Features* (:func:`feature_table`), per user with at least one event or order on or before
``as_of`` (later rows ignored), from the tables present:

- events: ``events`` (count), ``active_days`` (distinct days); with a ``category`` column,
  ``browse_<category>`` (share of the user's events with a category that name it, the 8 most
  frequent categories of events);
- orders: ``orders`` (purchases, ``revenue >= 0``), ``revenue`` (net), ``coupon_share`` (share
  of purchases with a coupon); without ``browse_`` features, ``cat_<category>`` (share of
  purchases per category, the 8 most frequent categories);
- messages: ``open_rate``, ``click_rate`` (of messages sent; 0 without messages);
- ``recency_days``: ``as_of`` - last active day (event or purchase).

Event rows without ``user_id`` (or without an ``event`` name, when the column exists) are
left out, as the prepared store leaves them out (:mod:`crm_helpers.segments.kernel`, the
same features from the store's sorted arrays on the embedded engine).

Missing parts are 0 (a user without orders has 0 orders and 0 category shares; a user with
no active day, e.g. refunds only, has ``recency_days`` 0). The table has no missing values.

*Scaling*: counts and money (``events, active_days, orders, revenue, recency_days``) are
``log1p`` (revenue floored at 0 first), then every feature is standardised (z-scores).

*Who is clustered*: users with at least ``min_active_days`` active days (``active_days``;
without events, ``orders``); the others are set aside as *low activity*, label ``-1``, and
are not clustered: a user seen on one or two days shows too little to be placed by
behaviour (on the realistic synthetic world half the users have at most four visits in
180 days). ``min_active_days=0`` clusters everyone. Scaling, profiles and the projection
are over the clustered users.

*k*: given, or (``"auto"``) the k in ``k_range`` with the best mean silhouette on a seeded
sample of at most ``sample_size`` users. *Model*: ``KMeans(n_clusters=k, n_init=2,
random_state=seed)`` fitted on a seeded sample of at most ``fit_size`` users, then every user
is assigned to the nearest centre; clusters are renumbered by size (0 = largest); the
low-activity group keeps ``-1``.

*Profiles* (:func:`cluster_profiles`): per cluster and feature, the cluster mean, the
population mean (of the clustered users), the index ``100 * cluster mean / population mean`` (NaN when the population
mean is 0) and the effect size, Cohen's d of the cluster against the rest on the scaled
feature (pooled standard deviation). *Stability*: the adjusted Rand index between the labels
of two fits with different seeds (1 = the same partition).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir
import numpy as np
import pandas as pd

from crm_helpers.engine import epoch_us
from crm_helpers.segments.core import US_PER_DAY, _backend, _day, day_number
from crm_helpers.store.paths import record_path

__all__ = [
    "ClusterResult",
    "cluster_profiles",
    "feature_query",
    "feature_table",
    "fit_clusters",
    "projection_2d",
    "too_few_to_cluster",
    "top_categories",
]

LOG_FEATURES = ("events", "active_days", "orders", "revenue", "recency_days")


def top_categories(orders: ir.Table, as_of: Any, k: int = 8) -> list[str]:
    """The ``k`` most frequent categories of purchases (or, given ``events``, of events)
    on or before ``as_of``.

    Counted over purchase rows (``revenue >= 0``; every event row for events) with a
    category; ties in the count are broken by the category name (ascending), so the choice
    does not depend on row order.
    """
    end = day_number(as_of)
    if "revenue" in orders.columns:
        o = orders.select("revenue", "category", day=_day(orders))
        o = o.filter((o.day <= end) & (o.revenue >= 0) & o.category.notnull())
    else:
        o = orders.select("category", day=_day(orders))
        o = o.filter((o.day <= end) & o.category.notnull())
    got = o.group_by("category").agg(n=o.count()).order_by([ibis.desc("n"), "category"]).limit(k)
    return [str(v) for v in got.to_pandas()["category"]]


@ibis.udf.scalar.builtin(name="bit_count")
def _bit_count(x: dt.int64) -> dt.int64:  # type: ignore[empty-body]
    """DuckDB and Spark ``bit_count(BIGINT)``: the number of bits set."""


@ibis.udf.agg.builtin(name="bit_or")
def _bit_or(x: dt.int64) -> dt.int64:  # type: ignore[empty-body]
    """DuckDB and Spark ``bit_or`` aggregate (Ibis' ``bit_or`` does not compile on Spark)."""


#: Days per bitmap word in :func:`_event_counts` (63: ``1 << 63`` overflows a signed BIGINT).
_WORD_DAYS = 63


def _event_counts(
    e: ir.Table, end: int, backend: str | None, browse: list[str] | None = None
) -> ir.Table:
    """``user_id, events, active_days, _last_e`` (and ``browse_<c>``) from events
    ``user_id, day`` (and ``category``), day <= end.

    ``browse_<c>``: the user's events with category ``c`` over those with any category
    (null without any), counted in the same groups as the events.

    ``active_days`` is a distinct count. ``COUNT(DISTINCT day)`` per user (a second hash
    table per group), or grouping by ``(user, day)`` first (one group per active day: 11M
    groups for 49M events at 1M users), both cost more than this: on DuckDB and Spark the
    days are grouped per user and 63-day word (``(end - day) // 63``), each group keeping
    a bitmap of its days (``bit_or(1 << (end - day) % 63)``), and the active days are the
    bits set, summed over a user's words. Other engines group by ``(user, day)`` first.
    """
    if backend in ("duckdb", "pyspark"):
        off = end - e.day
        w = e.mutate(_word=off // _WORD_DAYS, _bit=ibis.literal(1, "int64") << (off % _WORD_DAYS))
        keys, src = ["user_id", "_word"], w
        extra = {"bits": _bit_or(w._bit)}
    else:
        keys, src, extra = ["user_id", "day"], e, {}
    cat = {}
    if browse:
        cat["_ncat"] = src.category.notnull().ifelse(1, 0).sum()
        cat |= {f"_c{i}": (src.category == v).ifelse(1, 0).sum() for i, v in enumerate(browse)}
    g = src.group_by(keys).agg(n=src.count(), last=src.day.max(), **extra, **cat)
    days = _bit_count(g.bits).sum() if extra else g.count()
    shares = {}
    if browse:
        ncat = g._ncat.sum().cast("float64").nullif(0.0)
        shares = {
            f"browse_{_safe(v)}": g[f"_c{i}"].sum().cast("float64") / ncat
            for i, v in enumerate(browse)
        }
    return g.group_by("user_id").agg(
        events=g.n.sum().cast("float64"),
        active_days=days.cast("float64"),
        _last_e=g["last"].max(),
        **shares,
    )


def _safe(v: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in v.lower())


def feature_table(
    *,
    as_of: Any,
    events: ir.Table | None = None,
    orders: ir.Table | None = None,
    messages: ir.Table | None = None,
    prepared: Any = None,
) -> pd.DataFrame:
    """Per-user behavioural features computed in the engine (see the module docstring).

    Parameters
    ----------
    as_of
        The date the features are taken at (rows after it are ignored).
    events, orders, messages
        The loaded tables, or ``None`` for an absent one (events or orders needed).
    prepared
        :func:`crm_helpers.segments.kernel.prepared_inputs` of the data (None: the Ibis
        path); with it the events part is the sorted-array kernel (same table).

    Returns
    -------
    pandas.DataFrame
        Shape (n_users, 1 + n_features): one row per user (sorted by ``user_id``, index
        0..n-1), ``user_id`` and float64 feature columns without missing values.
    """
    df = feature_query(
        as_of=as_of, events=events, orders=orders, messages=messages, prepared=prepared
    )
    return df.to_pandas().reset_index(drop=True)


def feature_query(
    *,
    as_of: Any,
    events: ir.Table | None = None,
    orders: ir.Table | None = None,
    messages: ir.Table | None = None,
    categories: list[str] | None = None,
    browse: list[str] | None = None,
    prepared: Any = None,
) -> ir.Table:
    """The feature table as one engine-side expression (see the module docstring).

    One aggregate per table, each table scanned once (the last active day comes out of the
    same pass), the event and order aggregates joined by a FULL OUTER JOIN on ``user_id``,
    the message rates LEFT JOINed, missing parts 0 in the engine (``COALESCE``) and the rows
    sorted by ``user_id`` there: the result has no nulls, so it comes back as pandas in one
    columnar conversion.

    Parameters
    ----------
    categories
        The category columns (``cat_<category>``) in order; ``None``: the 8 most frequent
        purchase categories, by :func:`top_categories` (one extra, small query). Not used
        when events have a ``category`` column (``browse_`` features instead).
    browse
        The browsing category columns (``browse_<category>``) in order; ``None``: the 8 most
        frequent event categories (when events have a ``category`` column).
    prepared
        :func:`crm_helpers.segments.kernel.prepared_inputs` of the data whose ``events``
        these are (None: the Ibis path). The events part is then computed by
        :func:`crm_helpers.segments.kernel.event_features` from the prepared arrays and
        joined in the engine as a table in memory; the orders and messages parts, the join
        and the ordering are the same expression as on the Ibis path.

    Returns
    -------
    ibis.Table
        One row per user: ``user_id`` and float64 feature columns.
    """
    end = day_number(as_of)
    parts: list[tuple[ir.Table, list[str], str]] = []  # (aggregate, features, last-day column)
    if events is not None:
        has_cat = "category" in events.columns
        ev = None
        if prepared is not None and prepared.has_category == has_cat:
            from crm_helpers.segments.kernel import StoreChanged, event_features

            try:
                tbl, browse = event_features(prepared, end, browse)
            except (StoreChanged, OSError):  # the store was rebuilt meanwhile: the Ibis path
                tbl = None
            if tbl is not None:
                mem = ibis.memtable(tbl)
                ev = mem.select(
                    "user_id", "events", "active_days", "_last_e",
                    **{f"browse_{_safe(v)}": mem[f"_c{i}"] for i, v in enumerate(browse)},
                )  # fmt: skip
                record_path("segments", "kernel")
        if ev is None:
            record_path("segments", "ibis")
            present = events.user_id.notnull()
            if "event" in events.columns:
                present &= events.event.notnull()
            kept = events.filter(present)
            e = kept.select("user_id", *(["category"] if has_cat else []), day=_day(kept))
            e = e.filter(e.day <= end)
            # platform/channel shares and time of day were tried and left out: on the
            # synthetic world they lowered the recovery of the planted types (ARI 0.23 -> 0.13)
            if has_cat and browse is None:
                browse = top_categories(kept, as_of)
            # browsing affinity: most users rarely buy, but their events name what they view
            ev = _event_counts(e, end, _backend(events), browse if has_cat else None)
        names = [f"browse_{_safe(v)}" for v in (browse or [])] if has_cat else []
        parts.append((ev, ["events", "active_days", *names], "_last_e"))
        if has_cat:
            categories = []  # purchase categories only without browsing ones
    if orders is not None:
        cols = [c for c in ("coupon", "category") if c in orders.columns]
        o = orders.select("user_id", "revenue", *cols, day=_day(orders))
        o = o.filter(o.day <= end)
        buy = o.revenue >= 0
        counts: dict[str, ir.Value] = {}
        if "coupon" in cols:
            counts["coupon_share"] = (
                (buy & o.coupon.notnull() & (o.coupon != "")).ifelse(1.0, 0.0).sum()
            )
        if "category" in cols:
            if categories is None:
                categories = top_categories(orders, as_of)
            for v in categories:
                counts[f"cat_{_safe(v)}"] = (buy & (o.category == v)).ifelse(1.0, 0.0).sum()
        od = o.group_by("user_id").agg(
            orders=buy.ifelse(1.0, 0.0).sum(),
            revenue=o.revenue.sum().cast("float64"),
            _last_o=o.day.max(where=buy),
            **{f"_n_{k}": v for k, v in counts.items()},
        )
        # shares of purchases: one division per user after the aggregate (0 purchases: null)
        od = od.select(
            "user_id", "orders", "revenue", "_last_o",
            **{k: od[f"_n_{k}"] / od.orders.nullif(0.0) for k in counts},
        )  # fmt: skip
        parts.append((od, ["orders", "revenue", *counts], "_last_o"))
    if not parts:
        raise ValueError("features need events or orders")
    ms = None
    if messages is not None:
        m = messages.select(
            "user_id",
            "opened_at",
            "clicked_at",
            day=epoch_us(messages.sent_at, _backend(messages)) // US_PER_DAY,
        )
        m = m.filter(m.day <= end)
        ms = m.group_by("user_id").agg(
            open_rate=m.opened_at.notnull().ifelse(1.0, 0.0).mean(),
            click_rate=m.clicked_at.notnull().ifelse(1.0, 0.0).mean(),
        )
    # one join chain: events FULL OUTER JOIN orders, LEFT JOIN messages on either's user id
    first = parts[0][0]
    uid = first.user_id
    j = first
    if len(parts) == 2:
        second = parts[1][0]
        j = j.outer_join(second, first.user_id == second.user_id)
        uid = ibis.coalesce(first.user_id, second.user_id)
    if ms is not None:
        j = j.left_join(ms, uid == ms.user_id)
    cols = {f: agg[f] for agg, fs, _ in parts for f in fs}
    if ms is not None:
        cols |= {"open_rate": ms.open_rate, "click_rate": ms.click_rate}
    last = parts[0][0][parts[0][2]]
    if len(parts) == 2:  # the later of the two days; null only when both are
        other = parts[1][0][parts[1][2]]
        last = ibis.greatest(last.coalesce(other), other.coalesce(last))
    zero = ibis.literal(0.0)
    out = j.select(
        uid.name("user_id"),
        *[c.cast("float64").coalesce(zero).name(f) for f, c in cols.items()],
        (end - last).cast("float64").coalesce(zero).name("recency_days"),
    )
    return out.order_by("user_id")


def scale_features(features: pd.DataFrame) -> tuple[np.ndarray, list[str]]:
    """``log1p`` of counts/money, then z-scores; shape (n_users, n_features) and names.

    Constant features are dropped (they cannot separate users).
    """
    names = [c for c in features.columns if c != "user_id" and features[c].std() > 0]
    x = features[names].to_numpy(dtype=float).copy()
    for i, c in enumerate(names):
        if c in LOG_FEATURES:
            x[:, i] = np.log1p(np.maximum(x[:, i], 0.0))
    from sklearn.preprocessing import StandardScaler

    return StandardScaler().fit_transform(x), names


@dataclass
class ClusterResult:
    """A k-means clustering of users with its diagnostics."""

    labels: pd.DataFrame  # user_id, cluster (-1: low activity, not clustered)
    k: int
    silhouette: dict[int, float]  # k -> mean silhouette on the sample
    stability_ari: float
    scaled: np.ndarray  # (clustered users, features), rows in the order of ``clustered``
    feature_names: list[str]
    clustered: np.ndarray  # bool per row of ``labels``: clustered (not low activity)
    min_active_days: int = 0

    def sizes(self) -> pd.DataFrame:
        """``cluster, users, share`` (share of all users; ``-1``, low activity, last if any)."""
        s = self.labels["cluster"].value_counts().sort_index()
        s = pd.concat([s[s.index >= 0], s[s.index < 0]])
        return pd.DataFrame(
            {"cluster": s.index, "users": s.to_numpy(), "share": (s / s.sum()).to_numpy()}
        )


def _kmeans(x: np.ndarray, k: int, seed: int, fit_size: int = 20_000) -> np.ndarray:
    from sklearn.cluster import KMeans

    idx = np.random.default_rng(seed).choice(len(x), size=min(len(x), fit_size), replace=False)
    return KMeans(n_clusters=k, n_init=2, random_state=seed).fit(x[idx]).predict(x)


def _clustered(features: pd.DataFrame, min_active_days: int) -> np.ndarray:
    """Boolean mask, shape (n,): the users active on at least ``min_active_days`` days."""
    activity = next((c for c in ("active_days", "orders") if c in features.columns), None)
    keep = np.ones(len(features), dtype=bool)
    if activity is not None and min_active_days > 0:
        keep = features[activity].to_numpy(dtype=float) >= min_active_days
    return keep


def too_few_to_cluster(features: pd.DataFrame, min_active_days: int) -> str:
    """Why :func:`fit_clusters` cannot run on ``features`` (for a skip note), or ``""``.

    Clustering needs at least 3 users active on ``min_active_days`` or more days.
    """
    n = int(_clustered(features, min_active_days).sum())
    if n >= 3:
        return ""
    return (
        f"at least 3 users active on {min_active_days}+ days to cluster (the data have {n} "
        f"of {len(features):,} users)"
    )


def fit_clusters(
    features: pd.DataFrame,
    k: int | str = "auto",
    *,
    k_range: tuple[int, int] = (2, 8),
    seed: int = 0,
    sample_size: int = 2000,
    min_active_days: int = 3,
) -> ClusterResult:
    """k-means on the scaled features of active users (see the module docstring).

    Parameters
    ----------
    features : pandas.DataFrame
        :func:`feature_table`'s output, one row per user.
    min_active_days : int
        Users with fewer active days (orders without events) are labelled ``-1``.
    """
    from sklearn.metrics import adjusted_rand_score, silhouette_score

    if isinstance(min_active_days, bool) or not isinstance(min_active_days, (int, np.integer)):
        raise ValueError(f"min_active_days must be a whole number, got {min_active_days!r}")
    if min_active_days < 0:
        raise ValueError(f"min_active_days must be >= 0, got {min_active_days}")
    keep = _clustered(features, min_active_days)
    n = int(keep.sum())
    if n < 3:
        raise ValueError(
            f"clustering needs at least 3 users with {min_active_days}+ active days, got {n} "
            f"(of {len(features)}); lower min_active_days"
        )
    x, names = scale_features(features[keep])
    if not names:
        raise ValueError("every feature is constant: nothing to cluster on")
    rng = np.random.default_rng(seed)
    idx = rng.choice(n, size=min(n, sample_size), replace=False)
    sil: dict[int, float] = {}
    if k == "auto":
        lo, hi = k_range
        for kk in range(max(2, lo), min(hi, len(idx) - 1) + 1):
            lab = _kmeans(x[idx], kk, seed)
            if len(set(lab)) > 1:
                sil[kk] = float(silhouette_score(x[idx], lab))
        if not sil:
            raise ValueError("no k in k_range could be evaluated")
        k = max(sil, key=sil.get)
    if not isinstance(k, int) or isinstance(k, bool) or not 2 <= k < n:
        raise ValueError(f"clusters must be 'auto' or a whole number in [2, {n - 1}], got {k!r}")
    labels = _kmeans(x, k, seed)
    other = _kmeans(x, k, seed + 1)
    ari = float(adjusted_rand_score(labels, other))
    # renumber by size, largest first (ties by the old label)
    order = (
        pd.Series(labels).value_counts().sort_index().sort_values(ascending=False, kind="stable")
    )
    remap = {old: new for new, old in enumerate(order.index)}
    labels = np.array([remap[v] for v in labels])
    all_labels = np.full(len(features), -1)
    all_labels[keep] = labels
    if k not in sil:
        sil[k] = (
            float(silhouette_score(x[idx], labels[idx]))
            if len(set(labels[idx])) > 1
            else float("nan")
        )
    out = pd.DataFrame({"user_id": features["user_id"].to_numpy(), "cluster": all_labels})
    return ClusterResult(out, int(k), sil, ari, x, names, keep, int(min_active_days))


def cluster_profiles(features: pd.DataFrame, result: ClusterResult) -> pd.DataFrame:
    """Per cluster and feature: ``cluster, feature, mean, population_mean, index, effect_size``."""
    keep = result.clustered
    lab = result.labels["cluster"].to_numpy()[keep]
    rows = []
    for j, f in enumerate(result.feature_names):
        raw = features[f].to_numpy(dtype=float)[keep]
        z = result.scaled[:, j]
        pop = raw.mean()
        for c in range(result.k):
            inside = lab == c
            a, b = z[inside], z[~inside]
            if len(a) > 1 and len(b) > 1:
                sp = np.sqrt(
                    ((len(a) - 1) * a.var(ddof=1) + (len(b) - 1) * b.var(ddof=1))
                    / (len(a) + len(b) - 2)
                )
                d = (a.mean() - b.mean()) / sp if sp > 0 else np.nan
            else:
                d = np.nan
            m = raw[inside].mean() if inside.any() else np.nan
            rows.append({"cluster": c, "feature": f, "mean": m, "population_mean": pop,
                         "index": 100 * m / pop if pop != 0 else np.nan, "effect_size": d})  # fmt: skip
    return pd.DataFrame(rows)


def top_features(profiles: pd.DataFrame, n: int = 3) -> pd.DataFrame:
    """The ``n`` features with the largest absolute effect size per cluster."""
    p = profiles.dropna(subset=["effect_size"]).assign(abs_d=lambda d: d["effect_size"].abs())
    p = p.sort_values(["cluster", "abs_d"], ascending=[True, False])
    return p.groupby("cluster").head(n).drop(columns="abs_d").reset_index(drop=True)


def projection_2d(result: ClusterResult, max_points: int = 2000, seed: int = 0) -> pd.DataFrame:
    """PCA of the scaled features to 2-D on a seeded sample: ``x, y, cluster``."""
    from sklearn.decomposition import PCA

    n = len(result.scaled)
    idx = np.random.default_rng(seed).choice(n, size=min(n, max_points), replace=False)
    xy = PCA(n_components=2, random_state=seed).fit(result.scaled).transform(result.scaled[idx])
    lab = result.labels["cluster"].to_numpy()[result.clustered]
    return pd.DataFrame({"x": xy[:, 0], "y": xy[:, 1], "cluster": lab[idx]})
