"""Funnel analysis on top of the funnel engine: breakdowns, trends, audiences, sizing, drivers.

Every function starts from the per-user (per-attempt) funnel of
:func:`crm_helpers.funnels.core.user_funnel`, a lazy Ibis table with one row per unit::

    user_id, [attempt], [<extra_partition>], steps_reached (1..n), entry_at,
    step_1_at .. step_n_at, step_k_from_prev_s, step_k_from_start_s

joins it to ``data.users`` / ``data.events`` *in the engine* (DuckDB or Spark, same code) and
brings back only aggregates (counts per group, per period, per step) as pandas. The
statistics are then computed on those counts with :mod:`crm_helpers.stats`.

Units: with ``FunnelSpec(count="users")`` a unit is a user, with ``count="attempts"`` an
attempt; the count column is still called ``users`` so the tables keep one shape (the
figures in :mod:`crm_helpers.plots.funnels` read it).

Conventions shared by the tables
--------------------------------
* ``users`` at step k: units with ``steps_reached >= k``.
* ``conversion_from_start`` = users_k / users_1, ``conversion_from_previous`` =
  users_k / users_{k-1}; ``ci_low``/``ci_high`` and ``ci_prev_low``/``ci_prev_high`` are their
  Wilson intervals.
* Group-vs-rest and period-vs-period comparisons use the pooled two-proportion z-test with a
  Newcombe interval (:func:`crm_helpers.stats.two_proportion_test`), corrected for multiple
  comparisons with Benjamini-Hochberg; ``significant`` means ``q_value < alpha``.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any, Literal

import ibis
import numpy as np
import pandas as pd

from crm_helpers import stats
from crm_helpers.audiences import export_audience
from crm_helpers.funnels.core import period_step_counts, supports_period_counts

__all__ = [
    "DEFAULT_ATTRIBUTES",
    "breakdown_from_counts",
    "breakdown_table",
    "campaign_sizing",
    "conversion_drivers",
    "dropoff_audience",
    "export_audience",
    "period_comparison",
    "prepared_arrays",
    "trend_table",
]

#: User attributes an audience carries by default (those present in ``data.users``).
DEFAULT_ATTRIBUTES: tuple[str, ...] = ("country", "device", "acquisition_channel", "signup_at")
#: Label of groups lumped together (beyond ``max_groups``) and of missing group values.
OTHER = "other"
MISSING = "(missing)"

Period = Literal["day", "week", "month"]
_TRUNC = {"day": "D", "week": "W", "month": "M"}


# --------------------------------------------------------------------------------------------
# plumbing
# --------------------------------------------------------------------------------------------
def user_funnel(events: ibis.Table, spec: Any, *, extra_partition: str | None = None):
    """Per-unit funnel from the engine (:func:`crm_helpers.funnels.core.user_funnel`).

    A module-level indirection so tests can substitute a reference implementation.
    """
    from crm_helpers.funnels.core import user_funnel as _uf

    return _uf(events, spec, extra_partition=extra_partition)


def prepared_arrays(data: Any, spec: Any) -> Any:
    """The prepared event arrays of ``data`` for ``spec``'s funnel, or None.

    ``crm_helpers.store.event_arrays(data, columns=...)`` with the property columns the
    spec's ``where`` filters read (:func:`crm_helpers.funnels.kernel.needed_columns`), when
    the store offers that function (None itself on Spark and warehouses); None when it does
    not. ``funnel_table(data, spec, arrays=prepared_arrays(data, spec))`` then takes the
    sorted-array kernel where it can and the Ibis path elsewhere.
    """
    from crm_helpers import store
    from crm_helpers.funnels.kernel import needed_columns

    event_arrays = getattr(store, "event_arrays", None)
    return None if event_arrays is None else event_arrays(data, columns=needed_columns(spec))


def _events(data: Any) -> ibis.Table:
    return data.events if hasattr(data, "events") else data


def _users(data: Any) -> ibis.Table:
    if not hasattr(data, "users"):
        raise TypeError(
            "this analysis joins user attributes: pass a CRMData (crm_helpers.load(...)) "
            "with a users table, not a bare events table"
        )
    return data.users


def _has_users(data: Any) -> bool:
    """Whether ``data`` has a users table (a CRMData without one, or a bare events table: no)."""
    has = getattr(data, "has", None)
    return bool(has("users")) if has is not None else hasattr(data, "users")


def _n_steps(spec: Any) -> int:
    return spec.n_steps


def _step_meta(spec: Any) -> pd.DataFrame:
    """``step``, ``label`` (as in ``funnel_table``: ``Step.name``), ``event``."""
    steps = spec.step_list
    return pd.DataFrame(
        {
            "step": np.arange(1, len(steps) + 1),
            "label": [s.name for s in steps],
            "event": [s.event for s in steps],
        }
    )


def _unit_keys(uf: ibis.Table) -> list[str]:
    return ["user_id"] + (["attempt"] if "attempt" in uf.columns else [])


def _count_aggs(uf: ibis.Table, n: int) -> dict[str, ibis.Expr]:
    """``n_k`` = number of units with ``steps_reached >= k``, k = 1..n."""
    return {
        f"n_{k}": (uf.steps_reached >= k).ifelse(1, 0).sum().cast("int64") for k in range(1, n + 1)
    }


def _wide_to_long(wide: pd.DataFrame, keys: list[str], spec: Any, alpha: float) -> pd.DataFrame:
    """Counts ``n_1..n_n`` per key -> one row per (key, step) with rates and Wilson CIs."""
    n = _n_steps(spec)
    cols = [f"n_{k}" for k in range(1, n + 1)]
    long = wide.melt(id_vars=keys, value_vars=cols, var_name="_c", value_name="users")
    long["step"] = long["_c"].str.slice(2).astype(int)
    long = long.drop(columns="_c").merge(_step_meta(spec), on="step", how="left")
    long = long.sort_values([*keys, "step"], kind="mergesort").reset_index(drop=True)
    long["users"] = long["users"].fillna(0).astype("int64")
    first = long.groupby(keys, sort=False, dropna=False)["users"].transform("first")
    prev = long.groupby(keys, sort=False, dropna=False)["users"].shift(1)
    prev = prev.fillna(long["users"]).astype("int64")
    u = long["users"].to_numpy(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        long["conversion_from_start"] = np.where(first > 0, u / first.to_numpy(float), np.nan)
        long["conversion_from_previous"] = np.where(prev > 0, u / prev.to_numpy(float), np.nan)
    long["ci_low"], long["ci_high"] = stats.wilson_interval(long["users"], first, alpha)
    long["ci_prev_low"], long["ci_prev_high"] = stats.wilson_interval(long["users"], prev, alpha)
    long["dropoff"] = (prev - long["users"]).astype("int64")
    return long


def _bh_significant(p: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    _, q = stats.benjamini_hochberg(p, q=alpha)
    sig = np.where(np.isnan(q), False, q < alpha)
    return q, sig


# --------------------------------------------------------------------------------------------
# breakdown
# --------------------------------------------------------------------------------------------
def _group_funnel(
    data: Any, spec: Any, by: str, source: str
) -> tuple[ibis.Table, ibis.Table]:  # (per-unit funnel with a string column "group", uf)
    events = _events(data)
    if source == "user":
        users = _users(data)
        if by not in users.columns:
            raise KeyError(f"users has no column {by!r}; it has {list(users.columns)}")
        uf = user_funnel(events, spec)
        attrs = users.select(user_id=users.user_id, _g=users[by].cast("string"))
        t = uf.left_join(attrs, "user_id").select(*uf.columns, "_g")
    elif source == "first_touch":
        if by not in events.columns:
            raise KeyError(f"events has no property {by!r}; it has {list(events.columns)}")
        uf = user_funnel(events, spec)
        e = events.filter(spec.step_list[0].matches(events))
        # one value per (user, ts): several step-1 events at the same instant -> the smallest
        touch = e.group_by(user_id=e.user_id, _ts=e.ts).agg(_g=e[by].cast("string").min())
        t = uf.left_join(touch, [uf.user_id == touch.user_id, uf.entry_at == touch._ts]).select(
            *uf.columns, "_g"
        )
    elif source == "each_step":
        uf = user_funnel(events, spec, extra_partition=by)
        t = uf.mutate(_g=uf[by].cast("string"))
    else:
        raise ValueError(f"source must be 'user', 'first_touch' or 'each_step', got {source!r}")
    t = t.mutate(group=t._g.fill_null(MISSING)).drop("_g")
    return t, uf


def breakdown_table(
    data: Any,
    spec: Any,
    by: str,
    *,
    source: Literal["user", "first_touch", "each_step"] = "user",
    min_group_users: int = 200,
    alpha: float = 0.05,
    max_groups: int = 20,
) -> pd.DataFrame:
    """Funnel per group, each group's conversion tested against the rest of the users.

    Parameters
    ----------
    data : CRMData
        Loaded data (``data.events``; ``data.users`` for ``source="user"``).
    spec : FunnelSpec
        The funnel (steps, window, mode, start/end of entry).
    by : str
        Grouping column: a ``users`` column (``source="user"``) or an event property.
    source : {"user", "first_touch", "each_step"}
        ``"user"``: a users-table attribute (device, country, acquisition_channel, ...).
        ``"first_touch"``: the property's value on the user's entry (step-1) event.
        ``"each_step"``: the property must hold the same value at every step
        (``user_funnel(..., extra_partition=by)``: a user may count once per value).
    min_group_users : int, default 200
        Groups with fewer entering units are flagged ``small_group`` and not tested.
    alpha : float, default 0.05
        Level of the Wilson/Newcombe intervals and the BH false discovery rate.
    max_groups : int, default 20
        The ``max_groups`` largest groups (by entering units) are kept; the rest are summed
        into one group ``"other"``. Missing values form the group ``"(missing)"``.

    Returns
    -------
    pandas.DataFrame
        One row per (group, step), groups by size (largest first) and then step: ``group``,
        ``step``, ``label``, ``event``, ``users``, ``conversion_from_start``, ``ci_low``,
        ``ci_high``, ``conversion_from_previous``, ``ci_prev_low``, ``ci_prev_high``,
        ``dropoff``; the step test of ``conversion_from_previous`` vs the rest:
        ``step_rest_rate``, ``step_diff``, ``step_p_value``, ``step_q_value`` (BH across
        groups within the step), ``step_significant``; and per group (repeated on its
        rows) the overall conversion (last step / first step) vs the rest: ``entered``,
        ``converted``, ``overall_conversion``, ``rest_conversion``, ``diff``,
        ``diff_ci_low``, ``diff_ci_high`` (Newcombe), ``relative_lift``, ``p_value``,
        ``q_value`` (BH across tested groups), ``significant`` (``q_value < alpha``),
        ``small_group``. ``attrs`` holds ``by``, ``source`` and ``alpha``.
    """
    n = _n_steps(spec)
    t, _ = _group_funnel(data, spec, by, source)
    counts = t.group_by("group").agg(**_count_aggs(t, n)).to_pandas()
    out = breakdown_from_counts(
        counts, spec, min_group_users=min_group_users, alpha=alpha, max_groups=max_groups
    )
    out.attrs.update(by=by, source=source)
    return out


def breakdown_from_counts(
    counts: pd.DataFrame,
    spec: Any,
    *,
    min_group_users: int = 200,
    alpha: float = 0.05,
    max_groups: int = 20,
) -> pd.DataFrame:
    """The statistics of :func:`breakdown_table` from per-group step counts.

    Parameters
    ----------
    counts : pandas.DataFrame
        One row per group: ``group`` (str) and ``n_1 .. n_n`` (units with
        ``steps_reached >= k``). :func:`breakdown_table` builds it in the engine; tests
        (A/A splits) build it from a per-user funnel fetched once.
    spec : FunnelSpec
        The funnel (for step labels and the number of steps).
    min_group_users, alpha, max_groups
        As in :func:`breakdown_table`.

    Returns
    -------
    pandas.DataFrame
        The :func:`breakdown_table` frame (without ``by``/``source`` in ``attrs``).
    """
    n = _n_steps(spec)
    wide = counts.copy()
    wide["group"] = wide["group"].astype(object)
    wide = wide.sort_values(["n_1", "group"], ascending=[False, True], kind="mergesort")
    if len(wide) > max_groups:
        keep, rest = wide.iloc[:max_groups], wide.iloc[max_groups:]
        lumped = rest.drop(columns="group").sum().to_frame().T.assign(group=OTHER)
        # an existing group literally called "other" is summed with the lumped ones
        wide = pd.concat([keep, lumped], ignore_index=True)
        wide = wide.groupby("group", as_index=False, sort=False).sum()
    cols = [f"n_{k}" for k in range(1, n + 1)]
    wide[cols] = wide[cols].astype("int64")
    wide = wide.reset_index(drop=True)

    # overall: last / first, group vs rest
    entered = wide["n_1"].to_numpy(float)
    converted = wide[f"n_{n}"].to_numpy(float)
    small = entered < min_group_users
    res = stats.two_proportion_test(
        stats.Proportion(converted.sum() - converted, entered.sum() - entered),
        stats.Proportion(converted, entered),
        alpha,
    )
    p = np.where(small, np.nan, res.p_value)
    q, sig = _bh_significant(p, alpha)
    with np.errstate(divide="ignore", invalid="ignore"):
        rest_rate = (converted.sum() - converted) / (entered.sum() - entered)
        overall = np.where(entered > 0, converted / entered, np.nan)
    per_group = pd.DataFrame(
        {
            "group": wide["group"],
            "entered": entered.astype("int64"),
            "converted": converted.astype("int64"),
            "overall_conversion": overall,
            "rest_conversion": rest_rate,
            "diff": res.diff,
            "diff_ci_low": res.ci_low,
            "diff_ci_high": res.ci_high,
            "relative_lift": res.relative_lift,
            "p_value": p,
            "q_value": q,
            "significant": sig,
            "small_group": small,
        }
    )

    # one row per (group, step), group-major in the order of `wide` (largest first); built
    # with NumPy (no merges): this runs once per split in A/A simulations
    cnt = wide[cols].to_numpy(float)  # (G, n)
    n_groups = len(wide)
    prev = np.concatenate([cnt[:, :1], cnt[:, :-1]], axis=1)
    first = np.repeat(cnt[:, :1], n, axis=1)
    r = stats.two_proportion_test(
        stats.Proportion(cnt.sum(0) - cnt, prev.sum(0) - prev), stats.Proportion(cnt, prev), alpha
    )
    step_p = np.where(small[:, None] | (np.arange(1, n + 1) == 1)[None, :], np.nan, r.p_value)
    step_q = np.full_like(step_p, np.nan)
    step_sig = np.zeros(step_p.shape, dtype=bool)
    for k in range(n):  # BH across groups within each step
        step_q[:, k], step_sig[:, k] = _bh_significant(step_p[:, k], alpha)
    with np.errstate(divide="ignore", invalid="ignore"):
        rest_step = (cnt.sum(0) - cnt) / (prev.sum(0) - prev)
        conv_start = np.where(first > 0, cnt / first, np.nan)
        conv_prev = np.where(prev > 0, cnt / prev, np.nan)
    lo, hi = stats.wilson_interval(cnt, first, alpha)
    plo, phi = stats.wilson_interval(cnt, prev, alpha)
    meta = _step_meta(spec)
    step_diff = np.asarray(r.diff, float).copy()
    step_diff[:, 0] = np.nan
    out = pd.DataFrame(
        {
            "group": np.repeat(wide["group"].to_numpy(object), n),
            "step": np.tile(meta["step"].to_numpy(), n_groups),
            "label": np.tile(meta["label"].to_numpy(object), n_groups),
            "event": np.tile(meta["event"].to_numpy(object), n_groups),
            "users": cnt.ravel().astype("int64"),
            "conversion_from_start": conv_start.ravel(),
            "conversion_from_previous": conv_prev.ravel(),
            "ci_low": lo.ravel(),
            "ci_high": hi.ravel(),
            "ci_prev_low": plo.ravel(),
            "ci_prev_high": phi.ravel(),
            "dropoff": (prev - cnt).ravel().astype("int64"),
            "step_rest_rate": rest_step.ravel(),
            "step_diff": step_diff.ravel(),
            "step_p_value": step_p.ravel(),
            "step_q_value": step_q.ravel(),
            "step_significant": step_sig.ravel(),
        }
    )
    for c in per_group.columns[1:]:
        out[c] = np.repeat(per_group[c].to_numpy(), n)
    out.attrs.update(alpha=alpha)
    return out


# --------------------------------------------------------------------------------------------
# trends
# --------------------------------------------------------------------------------------------
def _period_counts(
    data: Any, spec: Any, period: str, periods: Sequence[pd.Timestamp] | None = None
) -> pd.DataFrame:
    """Per period of entry: the funnel of the users who entered in that period.

    Each period is its own funnel (entry restricted to the period, later steps may fall in
    the window after it), so a user who enters in several periods counts in each, as in
    Amplitude's and Mixpanel's conversion-over-time. Assigning each user to one period
    instead (e.g. the entry of their furthest chain) would fill late periods with users who
    had not converted before and bend the trend down by construction. *ordered* funnels
    without exclusions counting users (the common case) take one engine query for all
    periods (:func:`crm_helpers.funnels.core.period_step_counts`: 1.7 s against 15.5 s for
    26 weeks of the default data, 5.6 s against 105 s for 180 days); other specs run one
    query per period (a single UNION of many per-period plans is far slower on DuckDB:
    118 s against 11 s for 26 weeks). ``periods`` (period starts) limits the work to those
    periods.
    """
    if period not in _TRUNC:
        raise ValueError(f"period must be one of {list(_TRUNC)}, got {period!r}")
    n = _n_steps(spec)
    cols = ["period"] + [f"n_{k}" for k in range(1, n + 1)]
    ev = _events(data)
    if supports_period_counts(spec):
        wide = period_step_counts(ev, spec, period, periods=periods).to_pandas()
        wide = wide[wide["n_1"] > 0][cols]
        wide["period"] = pd.to_datetime(wide["period"]).astype("datetime64[us]")
        return wide.sort_values("period").reset_index(drop=True)
    return _period_counts_per_query(ev, spec, period, periods)


def _period_counts_per_query(
    ev: ibis.Table, spec: Any, period: str, periods: Sequence[pd.Timestamp] | None = None
) -> pd.DataFrame:
    """:func:`_period_counts` as one ``user_funnel`` query per period (any spec)."""
    n = _n_steps(spec)
    cols = ["period"] + [f"n_{k}" for k in range(1, n + 1)]
    if periods is None:
        bounds = ev.aggregate(lo=ev.ts.min(), hi=ev.ts.max()).to_pandas().iloc[0]
        if pd.isna(bounds["lo"]):
            return pd.DataFrame(columns=cols)
        lo = pd.Timestamp(bounds["lo"]).tz_localize(None)
        hi = pd.Timestamp(bounds["hi"]).tz_localize(None)
        if spec.start is not None:
            lo = max(lo, pd.Timestamp(spec.start))
        if spec.end is not None:
            hi = min(hi, pd.Timestamp(spec.end))
        periods, p = [], _period_start(lo, period)
        while p <= hi:
            periods.append(p)
            p = _shift(p, period, 1)
    rows = []
    for p in periods:
        start, end = p, _shift(p, period, 1)
        if spec.start is not None:
            start = max(start, pd.Timestamp(spec.start))
        if spec.end is not None:
            end = min(end, pd.Timestamp(spec.end))
        if start >= end:
            continue
        uf = user_funnel(ev, replace(spec, start=start, end=end))
        counts = uf.aggregate(**_count_aggs(uf, n)).to_pandas().iloc[0]
        counts = {c: 0 if pd.isna(counts[c]) else int(counts[c]) for c in cols[1:]}  # no rows
        if counts["n_1"] > 0:
            rows.append({"period": p, **counts})
    wide = pd.DataFrame(rows, columns=cols)
    wide["period"] = pd.to_datetime(wide["period"]).astype("datetime64[us]")
    return wide.sort_values("period").reset_index(drop=True)


def trend_table(
    data: Any, spec: Any, period: Period = "week", *, alpha: float = 0.05
) -> pd.DataFrame:
    """Funnel per period of entry (day, ISO week or month): each period's own funnel.

    The users of a period are those with a step-1 event in it; their later steps may fall
    in the conversion window after the period ends. A user entering in several periods
    counts in each (as in Amplitude's and Mixpanel's conversion over time).

    Parameters
    ----------
    data : CRMData or ibis.Table
        Loaded data (only ``events`` is used) or the events table itself.
    spec : FunnelSpec
        The funnel.
    period : {"day", "week", "month"}, default "week"
        Period of entry; weeks start on Monday.
    alpha : float, default 0.05
        Level of the Wilson intervals.

    Returns
    -------
    pandas.DataFrame
        One row per (period, step), periods with at least one entry only, sorted:
        ``period`` (period start, naive UTC timestamp), ``entered``, ``step``, ``label``,
        ``event``, ``users``, ``conversion_from_start`` (its ``ci_low``/``ci_high``),
        ``conversion_from_previous`` (``ci_prev_low``/``ci_prev_high``), ``dropoff``, and
        ``window_complete``: False for periods whose last entrants had less than the full
        conversion window before the data end (right-censored: they read low).
    """
    wide = _period_counts(data, spec, period)
    long = _wide_to_long(wide, ["period"], spec, alpha)
    long = long.merge(wide[["period", "n_1"]].rename(columns={"n_1": "entered"}), on="period")
    matured = _matured_until(data, spec)
    long["window_complete"] = [_shift(p, period, 1) <= matured for p in long["period"]]
    cols = ["period", "entered", "step", "label", "event", "users"]
    return long[cols + [c for c in long.columns if c not in cols]]


def _matured_until(data: Any, spec: Any, as_of: pd.Timestamp | None = None) -> pd.Timestamp:
    """Entries before this instant had their full conversion window by ``as_of``.

    ``as_of`` defaults to the last event in the data; the result is ``as_of`` minus the
    conversion window (an entry at that instant could still convert at ``as_of``).
    """
    if as_of is None:
        as_of = pd.Timestamp(_events(data).ts.max().to_pandas())
    return pd.Timestamp(as_of) - pd.Timedelta(days=float(spec.conversion_window_days))


def _period_start(ts: pd.Timestamp, period: str) -> pd.Timestamp:
    ts = pd.Timestamp(ts).normalize()
    if period == "day":
        return ts
    if period == "week":
        return ts - pd.Timedelta(days=ts.weekday())
    return ts.replace(day=1)


def _shift(start: pd.Timestamp, period: str, k: int) -> pd.Timestamp:
    if period == "day":
        return start + pd.Timedelta(days=k)
    if period == "week":
        return start + pd.Timedelta(weeks=k)
    return start + pd.DateOffset(months=k)


def period_comparison(
    data: Any,
    spec: Any,
    period: Period = "week",
    current: _dt.date | None = None,
    *,
    alpha: float = 0.05,
) -> pd.DataFrame:
    """The last complete period of entry vs the one before, per step.

    A period is complete when all of its entrants had the full conversion window before the
    data end (or ``current``): comparing a period whose users are still converting with
    one whose users are done would report a drop that is only right-censoring.

    Parameters
    ----------
    data : CRMData or ibis.Table
        Loaded data or the events table.
    spec : FunnelSpec
        The funnel.
    period : {"day", "week", "month"}, default "week"
        Period length (weeks start on Monday).
    current : datetime.date, optional
        "Today": the last complete period is the latest one that ends, plus the conversion
        window, on or before this date. Default: the last event in the data.
    alpha : float, default 0.05
        Level of the Newcombe intervals and the BH false discovery rate across steps.

    Returns
    -------
    pandas.DataFrame
        One row per step k >= 2: ``step``, ``label``, ``event``, ``previous_period``,
        ``current_period`` (period starts), ``previous_entered``, ``previous_users``,
        ``previous_rate``, ``current_entered``, ``current_users``, ``current_rate`` (rate =
        conversion from the first step), ``abs_change`` (current - previous),
        ``ci_low``/``ci_high`` (Newcombe), ``relative_change``, ``p_value`` (pooled z),
        ``q_value`` (BH across steps), ``significant``.
    """
    matured = _matured_until(data, spec, None if current is None else pd.Timestamp(current))
    start = _period_start(matured, period)
    if _shift(start, period, 1) > matured:  # entrants of this period are still converting
        start = _shift(start, period, -1)
    cur_start, prev_start = start, _shift(start, period, -1)
    wide = _period_counts(data, spec, period, [prev_start, cur_start]).set_index("period")
    n = _n_steps(spec)
    cols = [f"n_{k}" for k in range(1, n + 1)]
    empty = pd.Series(0, index=cols)
    cur = wide.loc[cur_start, cols] if cur_start in wide.index else empty
    prev = wide.loc[prev_start, cols] if prev_start in wide.index else empty
    steps = np.arange(2, n + 1)
    cu = cur[[f"n_{k}" for k in steps]].to_numpy(float)
    pu = prev[[f"n_{k}" for k in steps]].to_numpy(float)
    ce, pe = float(cur["n_1"]), float(prev["n_1"])
    r = stats.two_proportion_test(stats.Proportion(pu, pe), stats.Proportion(cu, ce), alpha)
    q, sig = _bh_significant(np.atleast_1d(r.p_value), alpha)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = pd.DataFrame(
            {
                "step": steps,
                "previous_period": prev_start,
                "current_period": cur_start,
                "previous_entered": int(pe),
                "previous_users": pu.astype("int64"),
                "previous_rate": pu / pe if pe else np.nan,
                "current_entered": int(ce),
                "current_users": cu.astype("int64"),
                "current_rate": cu / ce if ce else np.nan,
                "abs_change": r.diff,
                "ci_low": r.ci_low,
                "ci_high": r.ci_high,
                "relative_change": r.relative_lift,
                "p_value": r.p_value,
                "q_value": q,
                "significant": sig,
            }
        )
    out = out.merge(_step_meta(spec), on="step", how="left")
    first = ["step", "label", "event"]
    return out[first + [c for c in out.columns if c not in first]]


# --------------------------------------------------------------------------------------------
# audiences
# --------------------------------------------------------------------------------------------
def dropoff_audience(
    data: Any,
    spec: Any,
    step: int,
    *,
    attributes: Sequence[str] | None = None,
) -> ibis.Table:
    """Users who reached step ``step`` and not step ``step + 1`` within the window (lazy).

    Parameters
    ----------
    data : CRMData
        Loaded data (events and users).
    spec : FunnelSpec
        The funnel.
    step : int
        1-based step the audience reached last; ``1 <= step < n_steps``.
    attributes : sequence of str, optional
        ``users`` columns to carry. Default :data:`DEFAULT_ATTRIBUTES` (those present;
        none when the data have no users table); an explicitly named column that
        ``users`` lacks raises ``KeyError``.

    Returns
    -------
    ibis.Table
        One row per user (never materialised here): ``user_id``, ``entry_at``,
        ``last_step_at`` (time of step ``step``), then the attributes. With
        ``count="attempts"`` a user is in the audience when no attempt of theirs reached
        ``step + 1`` and one reached ``step``; times are of their latest such attempt.
    """
    n = _n_steps(spec)
    if not 1 <= step < n:
        raise ValueError(f"step must be in 1..{n - 1} (a step that has a next step), got {step}")
    if attributes is None:
        users = _users(data) if _has_users(data) else None
        attrs = [c for c in DEFAULT_ATTRIBUTES if users is not None and c in users.columns]
    else:
        users = _users(data)
        attrs = list(attributes)
        missing = [c for c in attrs if c not in users.columns]
        if missing:
            raise KeyError(f"users has no column(s) {missing}; it has {list(users.columns)}")
    uf = user_funnel(_events(data), spec)
    at = uf[f"step_{step}_at"]
    per_user = uf.group_by("user_id").agg(
        _max_reached=uf.steps_reached.max(),
        entry_at=uf.entry_at.max(where=uf.steps_reached == step),
        last_step_at=at.max(where=uf.steps_reached == step),
    )
    aud = per_user.filter(per_user._max_reached == step).select(
        "user_id", "entry_at", "last_step_at"
    )
    if attrs:
        u = users.select("user_id", *attrs)
        aud = aud.left_join(u, "user_id").select("user_id", "entry_at", "last_step_at", *attrs)
    return aud


# --------------------------------------------------------------------------------------------
# campaign sizing
# --------------------------------------------------------------------------------------------
def campaign_sizing(
    funnel_tbl: pd.DataFrame,
    *,
    expected_conversion: Mapping[int, float] | None = None,
    average_order_value: float,
    coupon_cost: float,
    send_cost: float,
) -> pd.DataFrame:
    """Size a win-back campaign for each drop-off audience of a funnel.

    Parameters
    ----------
    funnel_tbl : pandas.DataFrame
        ``funnel_table`` output (one row per step with ``step``, ``users``, ``label``,
        ``event``).
    expected_conversion : mapping of int to float, optional
        Step k -> share of the audience that stopped after step k (reached k, not k + 1)
        expected to buy after the campaign. Steps not given use the default assumption:
        the **observed conversion from step k onward**, ``users_n / users_k``. This
        assumes abandoners at step k convert like everyone who reached step k, so it
        ranks later-step abandoners higher (they convert better) but it is an
        *optimistic upper bound*, not an incremental (holdout-measured) effect: replace
        it with measured win-back rates when you have them.
    average_order_value : float
        Revenue per expected conversion.
    coupon_cost : float
        Cost per redeemed coupon (per expected conversion).
    send_cost : float
        Cost per message sent (per audience member).

    Returns
    -------
    pandas.DataFrame
        One row per drop-off step k = 1..n-1: ``step``, ``label``, ``event`` (the last step
        the audience reached), ``audience`` (users_k - users_{k+1}), ``expected_conversion``,
        ``assumption`` ("observed from step" or "given"), ``expected_conversions``,
        ``expected_revenue``, ``send_costs``, ``coupon_costs``, ``total_cost``,
        ``net_value`` (revenue - total cost), ``roi`` (net value / total cost; NaN when the
        cost is 0).
    """
    t = funnel_tbl.sort_values("step").reset_index(drop=True)
    users_c = "users" if "users" in t.columns else "attempts"
    u = t[users_c].to_numpy(float)
    n = len(t)
    if n < 2:
        raise ValueError("a funnel needs at least two steps to have a drop-off")
    given = dict(expected_conversion or {})
    rows = []
    for i in range(n - 1):
        k = int(t.loc[i, "step"])
        audience = u[i] - u[i + 1]
        if k in given:
            rate, how = float(given[k]), "given"
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"expected_conversion[{k}] = {rate} is not a share in [0, 1]")
        else:
            rate = u[-1] / u[i] if u[i] > 0 else np.nan
            how = "observed from step"
        conv = audience * rate
        revenue = conv * average_order_value
        send = audience * send_cost
        coupons = conv * coupon_cost
        cost = send + coupons
        rows.append(
            {
                "step": k,
                "label": t.loc[i, "label"] if "label" in t else None,
                "event": t.loc[i, "event"] if "event" in t else None,
                "audience": int(audience),
                "expected_conversion": rate,
                "assumption": how,
                "expected_conversions": conv,
                "expected_revenue": revenue,
                "send_costs": send,
                "coupon_costs": coupons,
                "total_cost": cost,
                "net_value": revenue - cost,
                "roi": (revenue - cost) / cost if cost > 0 else np.nan,
            }
        )
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# conversion drivers
# --------------------------------------------------------------------------------------------
def _default_properties(users: ibis.Table) -> list[str]:
    sch = users.schema()
    return [
        c for c in users.columns if c != "user_id" and (sch[c].is_string() or sch[c].is_boolean())
    ]


def conversion_drivers(
    data: Any,
    spec: Any,
    *,
    properties: Sequence[str] | None = None,
    prior_events: Sequence[str] = (),
    min_users: int = 50,
    alpha: float = 0.05,
    max_levels: int = 20,
) -> pd.DataFrame:
    """Which user attributes and earlier behaviours go with converting, as odds ratios.

    Converters reached the last step; drop-offs entered (step 1) but did not. For each
    factor the 2x2 table is ``[[converters with, drop-offs with], [converters without,
    drop-offs without]]`` and its odds ratio (> 1: the factor goes with converting) has a
    Woolf interval (Haldane-Anscombe 0.5 correction on a zero cell) and a Wald p-value
    (:func:`crm_helpers.stats.odds_ratio`). Associations, not causes.

    Parameters
    ----------
    data : CRMData
        Loaded data (events and users).
    spec : FunnelSpec
        The funnel.
    properties : sequence of str, optional
        ``users`` columns; each value (the ``max_levels`` most common) is one factor
        "property = value" vs all other units. Default: the string/boolean columns of users
        (none when the data have no users table).
    prior_events : sequence of str, default ()
        Event names; the factor is "did the event (at any time) before entry".
    min_users : int, default 50
        Factors held by fewer units (or by all but fewer) are left out.
    alpha : float, default 0.05
        Interval level and BH false discovery rate across all factors.
    max_levels : int, default 20
        Most common values per property to test.

    Returns
    -------
    pandas.DataFrame
        One row per factor, sorted by strength (``|log odds_ratio|``, largest first):
        ``kind`` ("property"/"prior_event"), ``feature``, ``value``, ``label``,
        ``converters_with``, ``dropoffs_with``, ``converters_without``,
        ``dropoffs_without``, ``conversion_with``, ``conversion_without``, ``odds_ratio``,
        ``ci_low``, ``ci_high``, ``p_value``, ``q_value``, ``significant``, ``strength``.
    """
    n = _n_steps(spec)
    events = _events(data)
    if properties is None:
        properties = _default_properties(_users(data)) if _has_users(data) else []
    users = _users(data) if properties else None
    uf = user_funnel(events, spec)
    keys = _unit_keys(uf)
    base = uf.select(*keys, "entry_at", _conv=(uf.steps_reached >= n).ifelse(1, 0))
    totals = base.agg(units=base._conv.count(), conv=base._conv.sum()).to_pandas().iloc[0]
    n_units, n_conv = int(totals["units"]), int(totals["conv"] or 0)
    props = list(properties)
    missing = [p for p in props if p not in users.columns]
    if missing:
        raise KeyError(f"users has no column(s) {missing}; it has {list(users.columns)}")

    rows: list[dict] = []
    if props:
        u = users.select("user_id", *[users[p].cast("string").name(p) for p in props])
        j = base.left_join(u, "user_id").select(*base.columns, *props)
        for p in props:
            g = (
                j.group_by(value=j[p].fill_null(MISSING))
                .agg(units=j._conv.count(), conv=j._conv.sum())
                .to_pandas()
            )
            g = g.sort_values("units", ascending=False).head(max_levels)
            for r in g.itertuples(index=False):
                rows.append(
                    {"kind": "property", "feature": p, "value": r.value, "label": f"{p} = {r.value}",
                     "units": int(r.units), "conv": int(r.conv)}
                )  # fmt: skip
    if prior_events:
        ev = events.filter(events.event.isin(list(prior_events)))
        b = base.select(*keys, "entry_at", "_conv")
        pe = ev.select(_uid=ev.user_id, _ev=ev.event, _ts=ev.ts)
        jj = b.inner_join(pe, [b.user_id == pe._uid, b.entry_at > pe._ts])
        distinct = jj.select(*keys, "_conv", "_ev").distinct()
        g = distinct.group_by("_ev").agg(units=distinct._conv.count(), conv=distinct._conv.sum())
        g = g.to_pandas().set_index("_ev")
        for e in prior_events:
            units = int(g.loc[e, "units"]) if e in g.index else 0
            conv = int(g.loc[e, "conv"]) if e in g.index else 0
            rows.append(
                {"kind": "prior_event", "feature": e, "value": "before entry",
                 "label": f"did {e} before entry", "units": units, "conv": conv}
            )  # fmt: skip
    cols = [
        "kind", "feature", "value", "label", "converters_with", "dropoffs_with",
        "converters_without", "dropoffs_without", "conversion_with", "conversion_without",
        "odds_ratio", "ci_low", "ci_high", "p_value", "q_value", "significant", "strength",
    ]  # fmt: skip
    f = pd.DataFrame(rows)
    if f.empty:
        return pd.DataFrame(columns=cols)
    f = f[(f["units"] >= min_users) & (n_units - f["units"] >= min_users)].reset_index(drop=True)
    if f.empty:
        return pd.DataFrame(columns=cols)
    a = f["conv"].to_numpy(float)
    b_ = (f["units"] - f["conv"]).to_numpy(float)
    c = n_conv - a
    d = (n_units - n_conv) - b_
    res = stats.odds_ratio(a, b_, c, d, alpha)
    q, sig = _bh_significant(np.asarray(res.p_value, float), alpha)
    with np.errstate(divide="ignore", invalid="ignore"):
        f = f.assign(
            converters_with=a.astype("int64"),
            dropoffs_with=b_.astype("int64"),
            converters_without=c.astype("int64"),
            dropoffs_without=d.astype("int64"),
            conversion_with=a / (a + b_),
            conversion_without=c / (c + d),
            odds_ratio=res.odds_ratio,
            ci_low=res.ci_low,
            ci_high=res.ci_high,
            p_value=res.p_value,
            q_value=q,
            significant=sig,
            strength=np.abs(np.log(np.asarray(res.odds_ratio, float))),
        )
    f = f.sort_values(["strength", "label"], ascending=[False, True], kind="mergesort")
    return f[cols].reset_index(drop=True)
