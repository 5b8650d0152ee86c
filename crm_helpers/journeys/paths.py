"""Paths, path variants, step matrices, goals and conformance of prepared journeys.

Semantics
---------
Positions ``pos = 1, 2, ...`` number a journey's rows in the tie-rule order of
:mod:`crm_helpers.journeys.core` (synthetic rows included when present).

- *Paths after an anchor* (depth ``N``): for each journey containing the anchor step, the
  steps at positions ``a, a+1, ..., a+N`` where ``a`` is the anchor's FIRST position in
  the journey (shorter when the journey ends earlier). *Paths before*: positions
  ``a-N .. a`` (``a`` again the first anchor position). Counted per journey.
- *Paths between* ``start`` and ``end`` (depth ``N``): for each journey containing
  ``start``, ``a`` its first position and ``b`` the first position of ``end`` after ``a``.
  The journey *reaches* the end when ``b`` exists; its path is the steps at ``a .. b`` when
  ``b - a <= N`` and otherwise the steps at ``a .. a+N`` followed by ``"…"`` and ``end``
  (``longer``). Journeys that do not reach the end share one row with path ``(start,)``.
- *Variants*: a journey's first ``max_steps`` steps (``truncated`` when it has more);
  per variant the number of journeys, of converting journeys (with the goal anywhere in
  the journey) and the median journey duration (last minus first time, seconds,
  linear-interpolation median).
- *Step matrix*: for ``k = 1..max_steps`` and each step, the number of journeys whose row
  at position ``k`` is that step, over the number of journeys (of the group). With
  ``until`` (a goal), only the rows before the journey's first ``until`` row count: the
  goal and what follows it are left out (journeys without it keep every row).
- *Goal* within a window: a journey converts when it has the goal step at a time
  ``t <= t_first + W`` (``t_first`` the journey's first time, ``W = window_days``).
- *Conformance* to an intended sequence ``s_1..s_m``: greedily, ``f_1`` = first position
  of ``s_1``, ``f_k`` = first position of ``s_k`` after ``f_{k-1}``; ``matched`` = the
  largest ``k`` with ``f_k`` defined (0 without ``s_1``). A journey *conforms* when
  ``matched = m`` (other steps may lie between). It *deviates after* ``s_matched``; its
  ``next_step`` is the step at position ``f_matched + 1`` (None at the journey's end).
"""

from __future__ import annotations

from collections.abc import Sequence

import ibis
import ibis.expr.types as ir
import pandas as pd

from crm_helpers.journeys import kernel as K
from crm_helpers.journeys.core import US_PER_DAY, Prepared
from crm_helpers.store.paths import record_path

__all__ = [
    "ELLIPSIS",
    "between",
    "conformance",
    "conformance_table",
    "goal_flags",
    "node_users",
    "paths",
    "step_matrix",
    "variants",
]

US_PER_SECOND = 1_000_000.0
#: The step shown for the omitted middle of a path longer than the depth.
ELLIPSIS = "…"


def _check_depth(depth: int, what: str = "depth") -> None:
    if not isinstance(depth, int) or isinstance(depth, bool) or depth < 1:
        raise ValueError(f"{what} must be a whole number >= 1, got {depth!r}")


def _decode_cols(prep: Prepared, df: pd.DataFrame, cols: list[str]) -> list[tuple]:
    dec = {c: prep.decode(df[c]) for c in cols}
    return [tuple(s for s in row if s is not None) for row in zip(*dec.values(), strict=True)]


def _near(prep: Prepared, depth: int, direction: str) -> dict[str, ir.Value]:
    """``s1..s{depth}``: the codes of the next (``"after"``) or previous (``"before"``) rows
    of the journey (window expressions over :meth:`Prepared.window`; null past its end)."""
    _check_depth(depth)
    if direction not in ("after", "before"):
        raise ValueError(f"direction must be 'after' or 'before', got {direction!r}")
    p, w = prep.table, prep.window()
    shift = (lambda k: p.code.lead(k)) if direction == "after" else (lambda k: p.code.lag(k))
    return {f"s{k}": shift(k).over(w) for k in range(1, depth + 1)}


def _is_first(prep: Prepared, code: int) -> ir.BooleanValue:
    """True on the journey's FIRST row with this code (tie-rule order): the row with the
    code whose running count of rows with the code, up to and including itself, is 1.

    The running count is a window in the same order as :meth:`Prepared.window` (so the
    engine computes it in the same sort as the journey's LEAD / LAG columns).
    """
    p = prep.table
    hits = (p.code == code).cast("int32").sum().over(prep.window(rows=(None, 0)))
    return (p.code == code) & (hits == 1)


def _first_anchor(prep: Prepared, anchor: str, depth: int, direction: str) -> ir.Table:
    """One row per journey with the anchor: its keys, ``s0`` (the anchor's code) and
    ``s1..s{depth}``, the codes of the next (``"after"``) or previous (``"before"``) steps
    of the journey's FIRST anchor (null past the journey's end).

    One window (one sort) gives every row its neighbours and whether it is the journey's
    first anchor (:func:`_is_first`). No join on the keys: a null session key stays one
    journey, as in the window.
    """
    near = _near(prep, depth, direction)
    p = prep.table
    # the window as a column first: a window inside a filter does not compile on Spark
    x = p.mutate(s0=p.code, _first=_is_first(prep, prep.code(anchor)), **near)
    return x.filter(x._first)


def paths(prep: Prepared, anchor: str, depth: int = 3, direction: str = "after") -> pd.DataFrame:
    """Path counts from (``"after"``) or to (``"before"``) the first anchor of each journey.

    Returns
    -------
    DataFrame
        One row per distinct path: ``path`` (tuple of step names, in time order, anchor
        first for ``"after"`` and last for ``"before"``), ``journeys``, ``share`` (of
        journeys with the anchor), by journeys descending then path. Empty when the
        anchor never occurs.

    With ``prep.arrays`` (a covered spec) the paths are counted on the sorted arrays
    (:func:`crm_helpers.journeys.kernel.path_counts`).
    """
    kj = K.of(prep)
    if kj is not None:
        ac = prep.code(anchor)
        _check_depth(depth)
        _check_direction(direction)
        record_path("journeys", "kernel")
        return kernel_paths_frame(prep, kj, ac, depth, direction)
    record_path("journeys", "ibis")
    piv = _first_anchor(prep, anchor, depth, direction)
    cols = _path_cols(depth, direction)
    df = piv.group_by(cols).aggregate(journeys=piv.count()).to_pandas()
    return _paths_frame(prep, df, cols)


def _check_direction(direction: str) -> None:
    if direction not in ("after", "before"):
        raise ValueError(f"direction must be 'after' or 'before', got {direction!r}")


def kernel_paths_frame(
    prep: Prepared, kj: K.KernelJourneys, anchor_code: int, depth: int, direction: str
) -> pd.DataFrame:
    """:func:`paths` from the kernel's path counts."""
    return _paths_frame(
        prep,
        K.path_counts(kj, anchor_code, depth, direction).frame(),
        _path_cols(depth, direction),
    )


def _path_cols(depth: int, direction: str) -> list[str]:
    """The columns of a path in time order: ``s0`` (the anchor) and ``s1..s{depth}``."""
    near = [f"s{k}" for k in range(1, depth + 1)]
    return ["s0", *near] if direction == "after" else [*reversed(near), "s0"]


def _paths_frame(prep: Prepared, df: pd.DataFrame, cols: list[str]) -> pd.DataFrame:
    """Counted code paths (``cols`` in time order, ``journeys``) -> the :func:`paths` frame."""
    out = pd.DataFrame(
        {"path": _decode_cols(prep, df, cols), "journeys": df["journeys"].astype("int64")}
    )
    total = out["journeys"].sum()
    out["share"] = out["journeys"] / total if total else 0.0
    return _sort_paths(out)


def node_users(
    prep: Prepared, anchor: str, depth: int = 3, direction: str = "after"
) -> pd.DataFrame:
    """Distinct users at each node of the :func:`paths` Sankey (a user with several journeys
    through a node counts once).

    Returns
    -------
    DataFrame
        ``level, step, users``: level 0 is the anchor, then 1, 2 ... after it (-1, -2 ...
        before it), as in :func:`~crm_helpers.journeys.analysis.sankey_data`; by level,
        users descending, step. Empty when the anchor never occurs.
    """
    kj = K.of(prep)
    if kj is not None:
        ac = prep.code(anchor)
        _check_depth(depth)
        _check_direction(direction)
        record_path("journeys", "kernel")
        return _node_users_frame(prep, K.node_user_counts(kj, ac, depth, direction))
    record_path("journeys", "ibis")
    sign = 1 if direction == "after" else -1
    piv = _first_anchor(prep, anchor, depth, direction)
    parts = [
        piv.select(level=ibis.literal(sign * k, "int32"), code=piv[f"s{k}"], user_id=piv.user_id)
        for k in range(depth + 1)
    ]
    u = parts[0]
    for q in parts[1:]:
        u = u.union(q, distinct=False)
    u = u.filter(u.code.notnull())
    df = u.group_by(["level", "code"]).aggregate(users=u.user_id.nunique()).to_pandas()
    return _node_users_frame(prep, df)


def _node_users_frame(prep: Prepared, df: pd.DataFrame) -> pd.DataFrame:
    """``level, code, users`` -> the :func:`node_users` frame."""
    out = pd.DataFrame(
        {
            "level": df["level"].astype("int64"),
            "step": prep.decode(df["code"]),
            "users": df["users"].astype("int64"),
        }
    )
    out = out.sort_values(["level", "users", "step"], ascending=[True, False, True])
    return out.reset_index(drop=True)


def between(prep: Prepared, start: str, end: str, depth: int = 4) -> pd.DataFrame:
    """Paths from the first ``start`` of each journey to the next ``end`` (module docstring).

    Parameters
    ----------
    prep
        Prepared journeys.
    start, end
        Step names (may be equal: then ``end`` is the next occurrence after the first).
    depth
        Steps after ``start`` shown in full; a longer way to ``end`` is cut with ``"…"``.

    Returns
    -------
    DataFrame
        One row per distinct path: ``path`` (tuple of step names), ``reached`` (bool),
        ``longer`` (bool), ``journeys``, ``share`` (of journeys with ``start``), by reached
        first, then journeys descending, then path. The non-reaching journeys are one row
        ``((start,), False, False, n, share)``. Empty when ``start`` never occurs.
    """
    _check_depth(depth)
    record_path("journeys", "ibis")  # no kernel for this analysis yet
    sc, ec = prep.code(start), prep.code(end)
    p = prep.with_pos()
    keys = list(prep.keys)
    w = ibis.window(group_by=keys)
    # window minimums of CASE expressions (portable; no FILTER clause in a window)
    x = p.mutate(a=ibis.ifelse(p.code == sc, p.pos, ibis.null("int32")).min().over(w))
    x = x.filter(x.a.notnull())
    hit = (x.code == ec) & (x.pos > x.a)
    x = x.mutate(b=ibis.ifelse(hit, x.pos, ibis.null("int32")).min().over(w))
    rel = x.pos - x.a
    x = x.filter(rel >= 0, rel <= depth, x.b.isnull() | (x.pos <= x.b))
    rel = x.pos - x.a
    cols = [f"s{k}" for k in range(depth + 1)]
    aggs = {c: x.code.max(where=rel == k) for k, c in enumerate(cols)}
    piv = x.group_by(keys).aggregate(**aggs, gap=(x.b - x.a).max())
    piv = piv.mutate(reached=piv.gap.notnull(), longer=(piv.gap > depth).fill_null(False))
    # non-reaching journeys collapse into one row: their steps are not part of the result
    piv = piv.mutate(**{c: ibis.ifelse(piv.reached, piv[c], ibis.null("int32")) for c in cols})
    df = piv.group_by([*cols, "reached", "longer"]).aggregate(journeys=piv.count()).to_pandas()
    steps = _decode_cols(prep, df, cols)
    reached = df["reached"].astype(bool).tolist()
    longer = df["longer"].astype(bool).tolist()
    path = [
        (*s, ELLIPSIS, end) if lg else (s if r else (start,))
        for s, r, lg in zip(steps, reached, longer, strict=True)
    ]
    out = pd.DataFrame(
        {
            "path": path,
            "reached": pd.Series(reached, dtype=bool),
            "longer": pd.Series(longer, dtype=bool),
            "journeys": df["journeys"].astype("int64"),
        }
    )
    total = out["journeys"].sum()
    out["share"] = out["journeys"] / total if total else 0.0
    out = out.assign(_k=out["path"].map(" > ".join))
    out = out.sort_values(
        ["reached", "journeys", "_k"], ascending=[False, False, True], ignore_index=True
    )
    return out.drop(columns="_k")


def _sort_paths(out: pd.DataFrame) -> pd.DataFrame:
    out = out.assign(_k=out["path"].map(lambda p: " > ".join(p)))
    out = out.sort_values(["journeys", "_k"], ascending=[False, True], ignore_index=True)
    return out.drop(columns="_k")


def goal_flags(prep: Prepared, goal: str, window_days: float | None = None) -> ir.Table:
    """Per journey: its keys and ``converted`` (bool), the goal within the window.

    ``window_days=None``: the goal anywhere in the journey.
    """
    record_path("journeys", "ibis")  # no kernel for this analysis yet
    gc = prep.code(goal)
    if window_days is not None and window_days < 0:
        raise ValueError(f"goal window must be >= 0 days, got {window_days!r}")
    p = prep.table
    agg = p.group_by(list(prep.keys)).aggregate(first=p.t.min(), hit=p.t.min(where=p.code == gc))
    return agg.select(*prep.keys, converted=_converted(agg.first, agg.hit, window_days))


def _converted(first: ir.Value, hit: ir.Value, window_days: float | None) -> ir.Value:
    """The goal's first time ``hit`` is set and within ``window_days`` of ``first``."""
    conv = hit.notnull()
    if window_days is not None:
        conv = conv & (hit - first <= round(window_days * US_PER_DAY))
    return conv.fill_null(False)


def variants(
    prep: Prepared,
    max_steps: int = 8,
    goal: str | None = None,
    goal_window_days: float | None = None,
) -> pd.DataFrame:
    """Top path variants: journeys' first ``max_steps`` steps.

    Returns
    -------
    DataFrame
        ``path`` (tuple), ``truncated`` (bool), ``journeys``, ``share``, ``converted``
        (journeys with the goal; 0 without a goal), ``conversion`` (NaN without a goal),
        ``median_duration_seconds``; by journeys descending then path.
    """
    _check_depth(max_steps, "max_steps")
    record_path("journeys", "ibis")  # no kernel for this analysis yet
    p = prep.with_pos()
    keys = list(prep.keys)
    cols = [f"s{k}" for k in range(1, max_steps + 1)]
    aggs = {c: p.code.max(where=p.pos == k) for k, c in enumerate(cols, 1)}
    aggs["n"] = p.count()
    aggs["dur"] = p.t.max() - p.t.min()
    if goal is not None:
        # flagged in the same aggregation, not joined on the keys: a join would drop journeys
        # whose session key is null (e.g. push opens outside any session)
        gc = prep.code(goal)
        if goal_window_days is not None and goal_window_days < 0:
            raise ValueError(f"goal window must be >= 0 days, got {goal_window_days!r}")
        aggs["first"] = p.t.min()
        aggs["hit"] = p.t.min(where=p.code == gc)
    piv = p.group_by(keys).aggregate(**aggs)
    if goal is not None:
        conv = _converted(piv["first"], piv.hit, goal_window_days).cast("int64")
    else:
        conv = ibis.literal(0, "int64")
    piv = piv.mutate(truncated=piv.n > max_steps, conv=conv)
    df = (
        piv.group_by([*cols, "truncated"])
        .aggregate(journeys=piv.count(), converted=piv.conv.sum(), med=piv.dur.quantile(0.5))
        .to_pandas()
    )
    out = pd.DataFrame(
        {
            "path": _decode_cols(prep, df, cols),
            "truncated": df["truncated"].astype(bool),
            "journeys": df["journeys"].astype("int64"),
            "converted": df["converted"].astype("int64"),
            "median_duration_seconds": df["med"].astype(float) / US_PER_SECOND,
        }
    )
    total = out["journeys"].sum()
    out["share"] = out["journeys"] / total if total else 0.0
    out["conversion"] = out["converted"] / out["journeys"] if goal is not None else float("nan")
    out = out.assign(_k=out["path"].map(" > ".join))
    out = out.sort_values(
        ["journeys", "_k", "truncated"], ascending=[False, True, True], ignore_index=True
    )
    return out.drop(columns="_k")[
        [
            "path",
            "truncated",
            "journeys",
            "share",
            "converted",
            "conversion",
            "median_duration_seconds",
        ]
    ]


def step_matrix(
    prep: Prepared,
    max_steps: int = 8,
    groups: ir.Table | None = None,
    until: str | None = None,
) -> pd.DataFrame:
    """Journeys at each position on each step, overall or per group.

    Parameters
    ----------
    groups
        Optional Ibis table with the journey keys and a ``group`` column (one row per
        journey); journeys without a row are left out.
    until
        A step (the goal): only each journey's rows before its first ``until`` row count
        (module docstring); the group sizes still count every journey.

    Returns
    -------
    DataFrame
        Long form: ``group`` (``"all"`` without groups), ``position``, ``step``,
        ``journeys``, ``group_journeys`` (the group's journeys), ``share``.
    """
    _check_depth(max_steps, "max_steps")
    record_path("journeys", "ibis")  # no kernel for this analysis yet
    p = prep.with_pos()
    keys = list(prep.keys)
    if groups is not None:
        p = prep.join_keys(p, groups.select(*keys, "group"))
    else:
        p = p.mutate(group=ibis.literal("all"))
    sizes = p.filter(p.pos == 1).group_by("group").aggregate(group_journeys=ibis._.count())
    if until is not None:
        gc = prep.code(until)
        w = ibis.window(group_by=keys)
        p = p.mutate(goal_pos=p.pos.min(where=p.code == gc).over(w))  # a column first (Spark)
        p = p.filter(p.goal_pos.isnull() | (p.pos < p.goal_pos))
    cells = (
        p.filter(p.pos <= max_steps)
        .group_by(["group", "pos", "code"])
        .aggregate(journeys=ibis._.count())
    )
    df = cells.to_pandas()
    sz = sizes.to_pandas()
    out = pd.DataFrame(
        {
            "group": df["group"].astype(str),
            "position": df["pos"].astype("int64"),
            "step": prep.decode(df["code"]),
            "journeys": df["journeys"].astype("int64"),
        }
    )
    out = out.merge(sz.assign(group=sz["group"].astype(str)), on="group", how="left")
    out["group_journeys"] = out["group_journeys"].astype("int64")
    out["share"] = out["journeys"] / out["group_journeys"]
    return out.sort_values(["group", "position", "step"], ignore_index=True)


def conformance_table(prep: Prepared, intended: Sequence[str]) -> ir.Table:
    """Per journey: its keys, ``matched`` and ``next_code`` (lazy; see the module docstring).

    Cache it (``.cache()``) to aggregate it several ways with :func:`conformance`.
    """
    if isinstance(intended, str) or len(intended) < 1:
        raise ValueError("intended must be a list of at least one step name")
    record_path("journeys", "ibis")  # no kernel for this analysis yet
    codes = [prep.code(s) for s in intended]
    p = prep.with_pos()
    keys = list(prep.keys)
    base = p.group_by(keys).aggregate(n=p.count())
    f = None
    for i, c in enumerate(codes, 1):
        cand = p.filter(p.code == c)
        if f is not None:
            cand = prep.join_keys(cand, f.select(*keys, prev=f[f"f{i - 1}"]))
            cand = cand.filter(cand.pos > cand.prev)
        fi = cand.group_by(keys).aggregate(**{f"f{i}": cand.pos.min()})
        f = fi if f is None else prep.join_keys(f, fi)
        base = prep.join_keys(base, fi, how="left")
    m = len(codes)
    matched = ibis.literal(0)
    for i in range(m, 0, -1):
        matched = ibis.ifelse(base[f"f{i}"].notnull() & (matched == 0), i, matched)
    last = ibis.literal(None, "int32")
    for i in range(1, m + 1):
        last = ibis.ifelse(base[f"f{i}"].notnull(), base[f"f{i}"], last)
    j = base.mutate(matched=matched, last=last).select(*keys, "matched", "last")
    nxt = p.select(*keys, last=p.pos - 1, next_code=p.code)
    j = prep.join_keys(j, nxt, how="left", also=["last"])
    return j.select(*keys, "matched", "next_code")


def conformance(
    prep: Prepared,
    intended: Sequence[str],
    groups: ir.Table | None = None,
    table: ir.Table | None = None,
) -> pd.DataFrame:
    """How far each journey follows the intended sequence (see the module docstring).

    Parameters
    ----------
    groups
        Optional journey keys with a ``group`` column (journeys without one are left out).
    table
        :func:`conformance_table` of the same ``prep`` and ``intended`` (e.g. cached).

    Returns
    -------
    DataFrame
        One row per ``(group, matched, next_step)``: ``journeys``; ``group`` is ``"all"``
        without groups. ``matched == len(intended)`` rows are the conforming journeys.
    """
    record_path("journeys", "ibis")  # no kernel for this analysis yet
    j = conformance_table(prep, intended) if table is None else table
    m = len(intended)
    keys = list(prep.keys)
    if groups is not None:
        j = prep.join_keys(j, groups.select(*keys, "group"))
    else:
        j = j.mutate(group=ibis.literal("all"))
    df = j.group_by(["group", "matched", "next_code"]).aggregate(journeys=j.count()).to_pandas()
    out = pd.DataFrame(
        {
            "group": df["group"].astype(str),
            "matched": df["matched"].astype("int64"),
            "next_step": prep.decode(df["next_code"]),
            "journeys": df["journeys"].astype("int64"),
        }
    )
    out.loc[out["matched"] == m, "next_step"] = None
    out = out.groupby(["group", "matched", "next_step"], dropna=False, as_index=False)[
        "journeys"
    ].sum()
    out["next_step"] = out["next_step"].astype(object).where(out["next_step"].notna(), None)
    return out.sort_values(
        ["group", "matched", "journeys"], ascending=[True, True, False], ignore_index=True
    )
