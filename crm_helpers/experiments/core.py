"""Engine side of an experiment readout: clean assignments, per-user metrics, sufficient stats.

Everything event-level is one Ibis expression that runs unchanged on DuckDB and Spark; only
per-arm sufficient statistics (a few rows) come back as pandas.

Semantics
---------
* **Assignments** of one experiment (``experiment_id`` compared as text), summarized to
  one row per user: a user with several rows in *one* variant (a repeated export, or an
  impression-level log with one row per impression) counts once, assigned at their
  *earliest* row (the first impression); a user with rows in *two or more* variants is
  excluded from every arm (counted as ``multi_variant``). A user whose analysis window
  ``[assigned_at, assigned_at + analysis_window_days]`` ends after the data's end (the
  latest order/event time, or the ``end`` given) is excluded (counted as
  ``incomplete_window``): their outcome is not yet observed.
* **Derived window** (``derive_window=True``): when fewer than half of the users (those in
  one variant) complete ``analysis_window_days``, the window becomes the longest one every
  such user completes: the data end minus the last assignment, rounded down to whole hours,
  at least one day (:func:`longest_complete_window`). The readout is then exactly the one
  of that window given by hand; no user left even then is an error.
* **Per-user values** (see :mod:`crm_helpers.experiments.metrics`): orders and events of
  the user in the window -- from the assignment time itself (an outcome at exactly
  ``assigned_at`` counts) to ``assigned_at + analysis_window_days`` -- and the same in the
  pre-period ``[assigned_at - pre_period_days, assigned_at)`` (the CUPED covariate, strictly
  before the assignment; 0 when ``pre_period_days`` is 0). Users without orders/events
  have 0.
* **Sufficient statistics** per group (variant, or variant and a breakdown key) and metric:
  ``n``, ``sum``, ``sum_sq`` of the value; ``pre_sum``, ``pre_sum_sq``, ``cross_sum``
  (value x pre-period value); for ratio metrics ``sum``/``sum_sq`` are the numerator's and
  ``den_sum``, ``den_sum_sq``, ``num_den_sum`` the denominator's and the cross-product.
  Amounts (revenue, capped values) are added exactly as DECIMAL (:func:`crm_helpers.exact.
  exact_sum`); integer-valued metrics (conversion, orders, event, event_count) uncapped are
  added as integers (exact: DuckDB adds BIGINT in 128 bits; Spark in 64 bits, far above any
  count's sum of squares), the same totals at under half the aggregation's CPU time.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import ibis
import ibis.expr.types as ir
import pandas as pd

from crm_helpers.engine import epoch_us
from crm_helpers.exact import exact_sum
from crm_helpers.experiments.metrics import ExperimentError, MetricSpec, parse_metric

__all__ = [
    "PLAN_COLUMNS",
    "STAT_COLUMNS",
    "Assignments",
    "assignment_plan",
    "assigned_users",
    "coupon_redemptions",
    "data_end",
    "days_text",
    "list_experiments",
    "longest_complete_window",
    "per_user_metrics",
    "sufficient_stats",
    "winsor_caps",
]

US_PER_DAY = 86_400_000_000
STAT_COLUMNS = (
    "n",
    "sum",
    "sum_sq",
    "pre_sum",
    "pre_sum_sq",
    "cross_sum",
    "den_sum",
    "den_sum_sq",
    "num_den_sum",
)


def _backend(data) -> str:
    return data.con.name


def list_experiments(data) -> pd.DataFrame:
    """One row per experiment in ``assignments``: ``experiment_id`` (text), ``users``,
    ``variants``, ``first_assigned``, ``last_assigned``; latest (by ``last_assigned``) first."""
    a = data.assignments
    out = (
        a.group_by(experiment_id=a.experiment_id.cast("string"))
        .aggregate(
            users=a.user_id.nunique(),
            variants=a.variant.nunique(),
            first_assigned=a.assigned_at.min(),
            last_assigned=a.assigned_at.max(),
        )
        .to_pandas()
    )
    return out.sort_values(["last_assigned", "experiment_id"], ascending=[False, True]).reset_index(
        drop=True
    )


def data_end(data, tables: set[str] | None = None) -> pd.Timestamp | None:
    """The latest ``ts`` in ``orders`` and ``events`` (those present and in ``tables``)."""
    ends = []
    for name in ("orders", "events"):
        if data.has(name, "ts") and (tables is None or name in tables):
            v = data.table(name).ts.max().to_pyarrow().as_py()
            if v is not None:
                ends.append(pd.Timestamp(v))
    return max(ends) if ends else None


@dataclass(frozen=True)
class Assignments:
    """The cleaned assignments of one experiment (lazy) and what cleaning removed.

    Attributes
    ----------
    table
        Ibis table ``user_id, variant, assigned_at, t0`` (``t0``: epoch microseconds), one row
        per analysed user.
    experiment_id
        The experiment (text).
    counts
        ``variant -> users analysed``.
    raw_counts
        ``variant -> distinct users assigned`` before cleaning.
    excluded
        ``{"duplicate_rows", "multi_variant", "incomplete_window"}`` -> count.
    data_end
        The cut-off used for complete windows.
    notes
        Plain-text messages about what was excluded (for the report).
    window_days
        The analysis window the users were kept for (days).
    window_how
        How the window was derived (empty: as given).
    rows, users
        Assignment rows of the experiment and distinct users in them (``rows > users``: the
        rows were summarized per user, see the module docstring).
    """

    table: ir.Table
    experiment_id: str
    counts: dict[str, int]
    raw_counts: dict[str, int]
    excluded: dict[str, int]
    data_end: pd.Timestamp | None
    notes: list[str] = field(default_factory=list)
    window_days: float | None = None
    window_how: str = ""
    rows: int = 0
    users: int = 0

    @property
    def variants(self) -> list[str]:
        return list(self.counts)


def longest_complete_window(end: pd.Timestamp, last_assigned: pd.Timestamp) -> float:
    """Days of the longest window every user completes: ``end - last_assigned`` rounded
    down to whole hours, at least one day.

    >>> longest_complete_window(pd.Timestamp("2025-03-03 18:30"), pd.Timestamp("2025-03-02"))
    1.75
    """
    hours = int((pd.Timestamp(end) - pd.Timestamp(last_assigned)) // pd.Timedelta(hours=1))
    return max(hours, 24) / 24.0


def days_text(days: float) -> str:
    """``"1 day"``, ``"14 days"`` or ``"1.75 days (42 hours)"``."""
    if float(days).is_integer():
        return f"{days:g} day" + ("" if days == 1 else "s")
    return f"{days:.3g} days ({days * 24:g} hours)"


def assigned_users(
    data,
    experiment_id: str,
    analysis_window_days: float,
    *,
    end: pd.Timestamp | None = None,
    tables: set[str] | None = None,
    derive_window: bool = False,
) -> Assignments:
    """Clean the assignments of ``experiment_id`` (see the module docstring).

    Parameters
    ----------
    data : CRMData
        Needs ``assignments``.
    experiment_id : str
        Compared as text with ``assignments.experiment_id``.
    analysis_window_days : float
        Users whose window ends after ``end`` are excluded.
    end : Timestamp, optional
        Data cut-off; default :func:`data_end` of the tables in ``tables``.
    tables : set of str, optional
        The tables the metrics read (for the default ``end``).
    derive_window : bool
        Shorten the window when fewer than half of the users complete it (module docstring).

    Returns
    -------
    Assignments

    Raises
    ------
    ExperimentError
        Unknown experiment (the message lists the known ones), or no user left.
    """
    if analysis_window_days <= 0:
        raise ExperimentError(f"analysis_window_days must be > 0, got {analysis_window_days!r}")
    backend = _backend(data)
    a = data.assignments
    a = a.filter(a.experiment_id.cast("string") == str(experiment_id))
    per_user = a.group_by("user_id").aggregate(
        rows=a.count(),
        n_variants=a.variant.nunique(),
        variant=a.variant.min(),
        assigned_at=a.assigned_at.min(),
    )
    end = pd.Timestamp(end) if end is not None else data_end(data, tables)
    win_us = int(round(analysis_window_days * US_PER_DAY))
    t0 = epoch_us(per_user.assigned_at, backend)
    if end is not None:
        end_us = int((pd.Timestamp(end) - pd.Timestamp("1970-01-01")) // pd.Timedelta("1us"))
        complete = (t0 + win_us) <= end_us
    else:
        complete = ibis.literal(True)
    flagged = per_user.mutate(complete=complete)
    single = flagged.n_variants == 1
    summary = (
        flagged.group_by("variant")
        .aggregate(
            users=flagged.count(),
            rows=flagged.rows.sum(),
            dup_rows=single.ifelse(flagged.rows - 1, 0).sum(),
            multi=(~single).cast("int64").sum(),
            incomplete=(single & ~flagged.complete).cast("int64").sum(),
            last=single.ifelse(t0, ibis.null("int64")).max(),
        )
        .to_pandas()
    )
    if summary.empty:
        known = list_experiments(data)["experiment_id"].tolist()
        raise ExperimentError(
            f"experiment {experiment_id!r} has no assignments; experiments in the data: "
            + (", ".join(map(repr, known[:20])) or "none")
        )
    summary["variant"] = summary["variant"].astype(str)
    summary = summary.sort_values("variant")
    eligible = int(summary["users"].sum() - summary["multi"].sum())
    n_complete = eligible - int(summary["incomplete"].sum())
    if derive_window and end is not None and eligible and 2 * n_complete < eligible:
        last = pd.Timestamp("1970-01-01") + pd.Timedelta(
            microseconds=int(summary["last"].dropna().max())
        )
        window = longest_complete_window(end, last)
        how = (
            f"only {n_complete:,} of {eligible:,} users complete {days_text(analysis_window_days)}"
            f" by the data end ({end:%Y-%m-%d %H:%M}): the longest window every assigned user "
            f"completes, the data end minus the last assignment ({last:%Y-%m-%d %H:%M}), in "
            "whole hours, at least 1 day"
        )
        try:
            out = assigned_users(data, experiment_id, window, end=end, tables=tables)
        except ExperimentError as e:
            raise ExperimentError(
                f"{e} Even the shortest window the readout derives ({days_text(window)}, the "
                "data end minus the last assignment, at least 1 day) leaves no user."
            ) from None
        note = (
            f"Outcomes are counted within {days_text(window)} of each user's assignment, not "
            f"{days_text(analysis_window_days)}: the data end {days_text(window)} after the "
            "last assignment, so a longer window would leave most users out. An effect that "
            "takes longer to show is not seen here."
        )
        return replace(out, window_how=how, notes=[note, *out.notes])
    # multi-variant users are grouped under their alphabetically first variant here
    raw = _raw_counts(a)
    keep = flagged.filter(single & flagged.complete)
    keep = keep.select("user_id", variant=keep.variant.cast("string"), assigned_at="assigned_at")
    keep = keep.mutate(t0=epoch_us(keep.assigned_at, backend))
    counts = {
        v: int(summary.loc[summary.variant == v, "users"].sum())
        - int(summary.loc[summary.variant == v, "multi"].sum())
        - int(summary.loc[summary.variant == v, "incomplete"].sum())
        for v in sorted(raw)
    }
    excluded = {
        "duplicate_rows": int(summary["dup_rows"].sum()),
        "multi_variant": int(summary["multi"].sum()),
        "incomplete_window": int(summary["incomplete"].sum()),
    }
    n_rows, n_users = int(summary["rows"].sum()), int(summary["users"].sum())
    notes = []
    if n_rows > n_users:
        notes.append(
            f"The assignments have {n_rows:,} rows for {n_users:,} users (several rows per "
            "user, e.g. one per impression or a repeated export): each user counts once, "
            "assigned at their first row (first impression), and outcomes count from that "
            "time; a user with rows in more than one variant is excluded from every arm."
        )
    if excluded["multi_variant"]:
        notes.append(
            f"{excluded['multi_variant']:,} user(s) assigned to more than one variant are "
            "excluded from every arm."
        )
    if excluded["incomplete_window"]:
        notes.append(
            f"{excluded['incomplete_window']:,} user(s) assigned less than "
            f"{days_text(analysis_window_days)} before the data end ({end}) are excluded: "
            "their analysis window is not complete yet."
        )
    if sum(counts.values()) == 0:
        raise ExperimentError(
            f"experiment {experiment_id!r}: no user is left to analyse ("
            + ", ".join(f"{k}: {v:,}" for k, v in excluded.items())
            + "); shorten analysis_window_days or use newer data."
        )
    return Assignments(
        keep, str(experiment_id), counts, raw, excluded, end, notes,
        window_days=float(analysis_window_days), rows=n_rows, users=n_users,
    )  # fmt: skip


#: Columns of ``assignments`` that may record each arm's planned share (first present wins).
PLAN_COLUMNS = ("planned_share", "planned_weight", "weight")


def assignment_plan(data, experiment_id: str) -> tuple[dict[str, float] | None, str, str]:
    """The planned split recorded in the assignments: ``(plan, column, note)``.

    ``plan`` is ``variant -> share`` from the first of :data:`PLAN_COLUMNS` present, when
    every variant of the experiment has exactly one non-null value there; else None, with
    ``note`` saying why (e.g. shares that change within an arm, as a bandit's weights do).
    """
    a = data.assignments
    col = next((c for c in PLAN_COLUMNS if c in a.columns), "")
    if not col:
        return None, "", ""
    a = a.filter(a.experiment_id.cast("string") == str(experiment_id))
    df = (
        a.group_by("variant")
        .aggregate(
            values=a[col].cast("float64").nunique(),
            share=a[col].cast("float64").max(),
        )
        .to_pandas()
    )
    if df.empty:
        return None, col, ""
    if (df["values"] != 1).any():
        return (
            None,
            col,
            (
                f"The assignments' {col} column is not one value per arm (it changes within an "
                "arm, or is empty), so it is not used as the planned split."
            ),
        )
    return {str(v): float(w) for v, w in zip(df["variant"], df["share"], strict=True)}, col, ""


def _raw_counts(a: ir.Table) -> dict[str, int]:
    df = a.group_by("variant").aggregate(users=a.user_id.nunique()).to_pandas()
    return {str(v): int(n) for v, n in zip(df["variant"], df["users"], strict=True)}


def _window_flags(t: ir.IntegerValue, t0: ir.IntegerValue, win_us: int, pre_us: int):
    # an outcome at exactly the assignment time counts; the pre-period ends just before it
    in_win = (t >= t0) & (t <= t0 + win_us)
    # no pre-period: an always-false column (a literal would not be a column of the join)
    in_pre = (t >= t0 - pre_us) & (t < t0) if pre_us > 0 else t0 < t0
    return in_win, in_pre


def _i(b: ir.BooleanValue) -> ir.IntegerValue:
    return b.cast("int64")


def per_user_metrics(
    data,
    assignments: Assignments,
    metrics: list[MetricSpec | str],
    *,
    analysis_window_days: float,
    pre_period_days: float = 0.0,
    coupon_code: str = "",
) -> ir.Table:
    """One row per analysed user with the raw columns every metric is built from (lazy).

    Returns
    -------
    ibis.Table
        ``user_id, variant, assigned_at`` and, as needed, ``orders, revenue, pre_orders,
        pre_revenue, coupon_orders, coupon_revenue`` and ``ev{i}, pre_ev{i}`` per event
        name (in the order of :func:`event_names`).

    Raises
    ------
    ExperimentError
        A metric needs a table the data lack.
    """
    specs = [m if isinstance(m, MetricSpec) else parse_metric(m) for m in metrics]
    backend = _backend(data)
    win_us = int(round(analysis_window_days * US_PER_DAY))
    pre_us = int(round(max(pre_period_days, 0.0) * US_PER_DAY))
    base = assignments.table
    out = base.select("user_id", "variant", "assigned_at", "t0")
    needs = set().union(*(s.tables for s in specs)) if specs else set()
    for t in sorted(needs):
        if not data.has(t):
            names = [s.name for s in specs if t in s.tables]
            raise ExperimentError(
                f"metric(s) {', '.join(map(repr, names))} need the {t} table, which the data lack"
            )
    if "orders" in needs:
        o = data.orders
        coupon = (
            o.coupon.cast("string") == coupon_code
            if coupon_code and "coupon" in o.columns
            else ibis.literal(False)
        )
        o = o.select(
            "user_id", t=epoch_us(o.ts, backend), revenue=o.revenue.cast("float64"), cp=coupon
        )
        j = base.select("user_id", "t0").inner_join(o, "user_id")
        in_win, in_pre = _window_flags(j.t, j.t0, win_us, pre_us)
        j = j.filter(in_win | in_pre)
        agg = j.group_by("user_id").aggregate(
            orders=_i(in_win).sum(),
            revenue=exact_sum(in_win.ifelse(j.revenue, 0.0)),
            pre_orders=_i(in_pre).sum(),
            pre_revenue=exact_sum(in_pre.ifelse(j.revenue, 0.0)),
            coupon_orders=_i(in_win & j.cp).sum(),
            coupon_revenue=exact_sum((in_win & j.cp).ifelse(j.revenue, 0.0)),
        )
        out = out.left_join(agg, "user_id").drop("user_id_right")
    names = event_names(specs)
    if names:
        e = data.events
        e = e.filter(e.event.isin(names)).select("user_id", "event", t=epoch_us(e.ts, backend))
        j = base.select("user_id", "t0").inner_join(e, "user_id")
        in_win, in_pre = _window_flags(j.t, j.t0, win_us, pre_us)
        j = j.filter(in_win | in_pre)
        aggs = {}
        for i, name in enumerate(names):
            is_e = j.event == name
            aggs[f"ev{i}"] = _i(in_win & is_e).sum()
            aggs[f"pre_ev{i}"] = _i(in_pre & is_e).sum()
        agg = j.group_by("user_id").aggregate(**aggs)
        out = out.left_join(agg, "user_id").drop("user_id_right")
    fill = {c: 0 for c in out.columns if c not in ("user_id", "variant", "assigned_at", "t0")}
    return out.fill_null(fill) if fill else out


def event_names(specs: list[MetricSpec]) -> list[str]:
    """Sorted distinct event names the metrics count (the ``ev{i}`` columns)."""
    return sorted(set().union(*(s.events for s in specs))) if specs else []


def _value(u: ir.Table, s: MetricSpec, names: list[str], pre: bool) -> ir.NumericValue:
    p = "pre_" if pre else ""
    if s.kind == "conversion":
        return _i(u[f"{p}orders"] > 0).cast("float64")
    if s.kind == "revenue":
        return u[f"{p}revenue"].cast("float64")
    if s.kind == "orders":
        return u[f"{p}orders"].cast("float64")
    col = u[f"{p}ev{names.index(s.event)}"]
    return _i(col > 0).cast("float64") if s.kind == "event" else col.cast("float64")


def _int_value(u: ir.Table, s: MetricSpec, names: list[str], pre: bool) -> ir.IntegerValue:
    """The per-user value of an integer-valued metric (not revenue) as int64."""
    p = "pre_" if pre else ""
    if s.kind in ("conversion", "orders"):
        col = u[f"{p}orders"]
    else:
        col = u[f"{p}ev{names.index(s.event)}"]
    return _i(col > 0) if s.kind in ("conversion", "event") else col.cast("int64")


def _int_sum(x: ir.IntegerValue) -> ir.FloatingScalar:
    """The exact sum of integer values as float64 (DuckDB adds BIGINT in 128 bits; the
    totals stay far below 2**53, where float64 holds every integer)."""
    return x.sum().cast("float64")


def winsor_caps(
    per_user: ir.Table, metrics: list[MetricSpec | str], percentile: float
) -> dict[str, float]:
    """Pooled ``percentile`` (0-100) of each winsorized metric's per-user value (one query)."""
    specs = [m if isinstance(m, MetricSpec) else parse_metric(m) for m in metrics]
    specs = [s for s in specs if s.winsorized]
    if not specs:
        return {}
    if not 0 < percentile < 100:
        raise ExperimentError(f"winsorize_percentile must be in (0, 100), got {percentile!r}")
    names = event_names(specs)
    aggs = {
        f"c{i}": _value(per_user, s, names, False).quantile(percentile / 100.0)
        for i, s in enumerate(specs)
    }
    row = per_user.aggregate(**aggs).to_pandas().iloc[0]
    return {s.name: float(row[f"c{i}"]) for i, s in enumerate(specs)}


def sufficient_stats(
    per_user: ir.Table,
    metrics: list[MetricSpec | str],
    *,
    by: list[str | ir.Value] | None = None,
    caps: dict[str, float] | None = None,
    all_events: list[str] | None = None,
) -> pd.DataFrame:
    """Per-group sufficient statistics of each metric, computed in the engine (one query).

    Parameters
    ----------
    per_user : ibis.Table
        From :func:`per_user_metrics` (with ``variant``).
    metrics : list of MetricSpec or str
    by : list, optional
        Grouping keys; default ``["variant"]``. Extra keys (a day, a segment) may be Ibis
        expressions named with ``.name(...)``.
    caps : dict, optional
        ``metric name -> cap`` of winsorized metrics (:func:`winsor_caps`); the pre-period
        value is capped at the same value.
    all_events : list of str, optional
        The event names ``per_user`` was built with (default: those of ``metrics``).

    Returns
    -------
    DataFrame
        Long: the group keys, ``metric`` and :data:`STAT_COLUMNS` (float; unused ones 0),
        one row per group and metric, sorted by the keys.
    """
    specs = [m if isinstance(m, MetricSpec) else parse_metric(m) for m in metrics]
    names = all_events if all_events is not None else event_names(specs)
    caps = caps or {}
    has_pre = "pre_orders" in per_user.columns or any(
        c.startswith("pre_ev") for c in per_user.columns
    )
    by = by or ["variant"]
    aggs: dict[str, ir.Value] = {"n": per_user.count()}
    for i, s in enumerate(specs):
        if s.is_ratio:
            y = _value(per_user, s.numerator, names, False)
            d = _value(per_user, s.denominator, names, False)
            aggs.update(
                {
                    f"m{i}_sum": exact_sum(y),
                    f"m{i}_sum_sq": exact_sum(y * y),
                    f"m{i}_den_sum": exact_sum(d),
                }
            )
            aggs.update(
                {f"m{i}_den_sum_sq": exact_sum(d * d), f"m{i}_num_den_sum": exact_sum(y * d)}
            )
            continue
        if s.kind != "revenue" and s.name not in caps:
            # integer-valued: added as integers, exact and cheaper than DECIMAL (the same
            # totals as exact_sum, which rounds nothing off an integer)
            y = _int_value(per_user, s, names, False)
            x = _int_value(per_user, s, names, True) if has_pre else ibis.literal(0, "int64")
            aggs.update({f"m{i}_sum": _int_sum(y), f"m{i}_sum_sq": _int_sum(y * y)})
            aggs.update(
                {
                    f"m{i}_pre_sum": _int_sum(x),
                    f"m{i}_pre_sum_sq": _int_sum(x * x),
                    f"m{i}_cross_sum": _int_sum(x * y),
                }
            )
            continue
        y = _value(per_user, s, names, False)
        x = _value(per_user, s, names, True) if has_pre else ibis.literal(0.0)
        if s.name in caps:
            cap = float(caps[s.name])
            y = (y > cap).ifelse(cap, y)
            x = (x > cap).ifelse(cap, x)
        aggs.update({f"m{i}_sum": exact_sum(y), f"m{i}_sum_sq": exact_sum(y * y)})
        aggs.update(
            {
                f"m{i}_pre_sum": exact_sum(x),
                f"m{i}_pre_sum_sq": exact_sum(x * x),
                f"m{i}_cross_sum": exact_sum(x * y),
            }
        )
    wide = per_user.group_by(by).aggregate(**aggs).to_pandas()
    keys = [k if isinstance(k, str) else k.get_name() for k in by]
    rows = []
    for i, s in enumerate(specs):
        part = wide[keys].copy()
        part["metric"] = s.name
        for c in STAT_COLUMNS:
            src = "n" if c == "n" else f"m{i}_{c}"
            part[c] = wide[src].astype(float).fillna(0.0) if src in wide else 0.0
        rows.append(part)
    out = (
        pd.concat(rows, ignore_index=True)
        if rows
        else pd.DataFrame(columns=[*keys, "metric", *STAT_COLUMNS])
    )
    if "variant" in out:
        out["variant"] = out["variant"].astype(str)
    return out.sort_values([*keys, "metric"], kind="mergesort").reset_index(drop=True)


def coupon_redemptions(per_user) -> dict[str, int]:
    """``variant -> orders with the coupon`` in the analysis window (one small query)."""
    if "coupon_orders" not in per_user.columns:
        return {}
    df = per_user.group_by("variant").aggregate(r=per_user.coupon_orders.sum()).to_pandas()
    return {str(v): int(r) for v, r in zip(df["variant"], df["r"].fillna(0), strict=True)}
