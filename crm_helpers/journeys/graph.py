"""The transition graph of prepared journeys: directly-follows counts, times, reach, loops.

Semantics
---------
Over a :class:`~crm_helpers.journeys.core.Prepared` table (journeys ordered by the tie
rule of :mod:`crm_helpers.journeys.core`):

- a *transition* ``a -> b`` is a pair of consecutive rows of one journey; its time is
  ``t_b - t_a`` (seconds, 0 for ties). ``count`` is the number of such pairs,
  ``share_of_all`` = count / all transitions, ``share_of_source`` = count / transitions
  leaving ``a``; ``median_seconds`` / ``p90_seconds`` are the linear-interpolation
  quantiles (numpy's default) of the times of that transition;
- a node's *reach* is the number of distinct users with at least one row of that step
  (``users``), with ``events`` its rows and ``journeys`` its distinct journeys;
- *loops*: a step is *repeated* in a journey when it has more than one row there.

Engine shape: one ``LEAD`` of ``code`` and ``t`` over the journey window, then one
``GROUP BY (code, next)``; names are decoded from the small result. :func:`flow` counts the
transitions and the paths around an anchor (as :func:`~crm_helpers.journeys.paths.paths`)
from one window and one ``GROUP BY``: one sort of the events instead of two.
"""

from __future__ import annotations

from dataclasses import dataclass

import ibis
import ibis.expr.types as ir
import pandas as pd

from crm_helpers.journeys import kernel as K
from crm_helpers.journeys.core import Prepared
from crm_helpers.journeys.paths import (
    _check_depth,
    _is_first,
    _near,
    _path_cols,
    _paths_frame,
    kernel_paths_frame,
)
from crm_helpers.store.paths import record_path

__all__ = ["Flow", "flow", "loops_table", "node_reach", "transitions"]

US_PER_SECOND = 1_000_000.0


def transitions(
    prep: Prepared, *, timings: bool = True, groups: ir.Table | None = None
) -> pd.DataFrame:
    """Directly-follows counts (and times) of all transitions.

    Parameters
    ----------
    prep
        Prepared journeys.
    timings
        Also compute ``median_seconds`` and ``p90_seconds`` (one more aggregate per edge).
    groups
        Optional journey keys with a ``group`` column (one row per journey; journeys
        without a row are left out): the edges of every group in the same query.

    Returns
    -------
    DataFrame
        One row per edge (``n_edges`` rows; per group and edge with ``groups``, a first
        column ``group``): ``source, target, count, share_of_all, share_of_source`` (and
        ``median_seconds, p90_seconds``), shares within the group; by (group,) count
        descending then source, target.

    With ``prep.arrays`` (a covered spec) (and no ``groups``) the counts and times come from the sorted
    arrays (:func:`crm_helpers.journeys.kernel.edge_counts`); else from the engine.
    """
    kj = K.of(prep)
    if kj is not None and groups is None:
        record_path("journeys", "kernel")
        return _edges_frame(prep, pd.DataFrame(K.edge_counts(kj, timings=timings)), timings=timings)
    record_path("journeys", "ibis")
    p = prep.table
    by = ["code", "nxt"]
    if groups is not None:
        keys = list(prep.keys)
        p = prep.join_keys(p, groups.select(*keys, group=groups.group.cast("string")))
        by = ["group", *by]
    w = prep.window()
    nxt = {"nxt": p.code.lead().over(w)}
    if timings:  # the time to the next step only when asked (one window column less)
        nxt["dt"] = p.t.lead().over(w) - p.t
    x = p.mutate(**nxt)
    x = x.filter(x.nxt.notnull())
    aggs = {"count": x.count()}
    if timings:
        aggs["median_us"] = x.dt.quantile(0.5)
        aggs["p90_us"] = x.dt.quantile(0.9)
    df = x.group_by(by).aggregate(**aggs).to_pandas()
    return _edges_frame(prep, df, grouped=groups is not None, timings=timings)


def _edges_frame(
    prep: Prepared, df: pd.DataFrame, *, grouped: bool = False, timings: bool = False
) -> pd.DataFrame:
    """Counted code pairs (``(group,) code, nxt, count`` and, with ``timings``,
    ``median_us, p90_us``) -> the :func:`transitions` frame."""
    out = pd.DataFrame(
        {
            "source": prep.decode(df["code"]),
            "target": prep.decode(df["nxt"]),
            "count": df["count"].astype("int64"),
        }
    )
    g = ["group"] if grouped else ["_all"]
    out.insert(0, g[0], df["group"].astype(str).to_numpy() if grouped else "all")
    total = out.groupby(g)["count"].transform("sum")
    out["share_of_all"] = out["count"] / total if len(out) else 0.0
    out["share_of_source"] = out["count"] / out.groupby([*g, "source"])["count"].transform("sum")
    if timings:
        out["median_seconds"] = df["median_us"].astype(float) / US_PER_SECOND
        out["p90_seconds"] = df["p90_us"].astype(float) / US_PER_SECOND
    out = out.sort_values(
        [*g, "count", "source", "target"],
        ascending=[True, False, True, True],
        ignore_index=True,
    )
    return out if grouped else out.drop(columns="_all")


@dataclass(frozen=True)
class Flow:
    """The transition graph and the paths around an anchor, from one pass (:func:`flow`).

    Attributes
    ----------
    transitions
        As :func:`transitions` with ``timings=False``.
    paths
        As :func:`~crm_helpers.journeys.paths.paths` for the same anchor, depth and
        direction.
    """

    transitions: pd.DataFrame
    paths: pd.DataFrame


def flow(prep: Prepared, anchor: str, depth: int = 3, direction: str = "after") -> Flow:
    """Directly-follows counts and the paths from (or to) the first anchor, in ONE query.

    The same results as ``transitions(prep, timings=False)`` and ``paths(prep, anchor,
    depth, direction)`` (tested equal), for large uncached logs where each of those is a
    full sort of the events: here one window gives every row its next step, its
    ``depth`` neighbours and whether it is the journey's first anchor, and one
    ``GROUP BY`` counts both. The grouping key is ``(code, next, first, p1..p{depth})``
    with ``p_k`` the k-th neighbour on first-anchor rows and null elsewhere, so the rows
    that are not a first anchor fall into the few ``(code, next)`` groups; transitions sum
    the groups by ``(code, next)`` and paths read the first-anchor groups (a few thousand
    rows in pandas). Transition times need their own aggregate: use :func:`transitions`.

    Parameters
    ----------
    prep
        Prepared journeys (cached or not).
    anchor, depth, direction
        As :func:`~crm_helpers.journeys.paths.paths`.

    Returns
    -------
    Flow
        ``transitions`` (one row per edge) and ``paths`` (one row per distinct path).
    """
    ac = prep.code(anchor)
    kj = K.of(prep)
    if kj is not None:
        _check_depth(depth)
        if direction not in ("after", "before"):
            raise ValueError(f"direction must be 'after' or 'before', got {direction!r}")
        record_path("journeys", "kernel")
        edges = _edges_frame(prep, pd.DataFrame(K.edge_counts(kj, timings=False)))
        return Flow(edges, kernel_paths_frame(prep, kj, ac, depth, direction))
    record_path("journeys", "ibis")
    near = _near(prep, depth, direction)
    p = prep.table
    if direction == "after":  # the next step is the first path step: one LEAD, not two
        nxt = near.pop("s1")
    else:
        nxt = p.code.lead().over(prep.window())
    x = p.mutate(nxt=nxt, first=_is_first(prep, ac), **near)
    none = ibis.null("int32")
    cols = _path_cols(depth, direction)  # s0 is the anchor's own code
    keep = [c for c in cols if c != "s0" and not (direction == "after" and c == "s1")]
    x = x.filter(x.nxt.notnull() | x.first)
    x = x.select("code", "nxt", "first", **{c: ibis.ifelse(x.first, x[c], none) for c in keep})
    df = x.group_by(["code", "nxt", "first", *keep]).aggregate(count=x.count()).to_pandas()
    df["first"] = df["first"].astype(bool)
    pairs = df[df["nxt"].notna()]
    pairs = pairs.groupby(["code", "nxt"], as_index=False, sort=False)["count"].sum()
    firsts = df[df["first"]].rename(columns={"code": "s0", "count": "journeys"})
    if direction == "after":
        firsts = firsts.rename(columns={"nxt": "s1"})
    firsts = firsts.groupby(cols, as_index=False, sort=False, dropna=False)["journeys"].sum()
    return Flow(_edges_frame(prep, pairs), _paths_frame(prep, firsts, cols))


def node_reach(prep: Prepared) -> pd.DataFrame:
    """Users, journeys and events per step.

    Returns
    -------
    DataFrame
        One row per step present: ``step, users, journeys, events, share_of_users`` (users
        / all users with a journey), by users descending then step.
    """
    kj = K.of(prep)
    if kj is not None:
        record_path("journeys", "kernel")
        sc = K.step_counts(kj)
        return _reach_frame(prep, sc.frame, sc.n_users)
    record_path("journeys", "ibis")
    p = prep.table
    # per (journey, step) first: journeys are counted as groups (a null session is one
    # journey, as everywhere), not as distinct concatenated key strings
    per = p.group_by([*prep.keys, "code"]).aggregate(n=p.count())
    df = (
        per.group_by("code")
        .aggregate(users=per.user_id.nunique(), journeys=per.count(), events=per.n.sum())
        .to_pandas()
    )
    n_users = int(p.user_id.nunique().to_pyarrow().as_py() or 0)
    return _reach_frame(prep, df, n_users)


def _reach_frame(prep: Prepared, df: pd.DataFrame, n_users: int) -> pd.DataFrame:
    """``code, users, journeys, events`` per step -> the :func:`node_reach` frame."""
    out = pd.DataFrame(
        {
            "step": prep.decode(df["code"]),
            "users": df["users"].astype("int64"),
            "journeys": df["journeys"].astype("int64"),
            "events": df["events"].astype("int64"),
        }
    )
    out["share_of_users"] = out["users"] / n_users if n_users else 0.0
    return out.sort_values(["users", "step"], ascending=[False, True], ignore_index=True)


def loops_table(prep: Prepared) -> pd.DataFrame:
    """Repeated steps: journeys visiting each step more than once.

    Returns
    -------
    DataFrame
        One row per step: ``step, journeys, repeating_journeys, share_repeating,
        mean_visits`` (rows per journey among journeys with the step), by
        repeating_journeys descending then step.
    """
    kj = K.of(prep)
    if kj is not None:
        record_path("journeys", "kernel")
        df = K.step_counts(kj).frame
        df = df.assign(mean_visits=df["events"] / df["journeys"])
        return _loops_frame(prep, df)
    record_path("journeys", "ibis")
    p = prep.table
    per = p.group_by([*prep.keys, "code"]).aggregate(n=p.count())
    df = (
        per.group_by("code")
        .aggregate(
            journeys=per.count(),
            repeating_journeys=(per.n > 1).cast("int64").sum(),
            mean_visits=per.n.mean(),
        )
        .to_pandas()
    )
    return _loops_frame(prep, df)


def _loops_frame(prep: Prepared, df: pd.DataFrame) -> pd.DataFrame:
    """``code, journeys, repeating_journeys, mean_visits`` -> the :func:`loops_table` frame."""
    out = pd.DataFrame(
        {
            "step": prep.decode(df["code"]),
            "journeys": df["journeys"].astype("int64"),
            "repeating_journeys": df["repeating_journeys"].astype("int64"),
            "mean_visits": df["mean_visits"].astype(float),
        }
    )
    out["share_repeating"] = out["repeating_journeys"] / out["journeys"]
    return out.sort_values(
        ["repeating_journeys", "step"], ascending=[False, True], ignore_index=True
    )
