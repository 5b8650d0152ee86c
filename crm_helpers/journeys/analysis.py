"""Tables built on the journey engine: Sankey data, group comparisons with tests, stages.

Semantics
---------
- :func:`sankey_data` turns path counts (:func:`~crm_helpers.journeys.paths.paths`) into
  nodes ``(level, step)`` and links between consecutive levels; level 0 is the anchor
  (negative levels come before it). A node's ``journeys`` is the number of journeys whose
  path has that step at that level; ``share`` divides by the journeys with the anchor.
- :func:`paths_between`: paths after ``start`` that reach ``end`` within the depth,
  truncated at the first ``end``.
- :func:`converter_groups`: each journey labelled ``"converters"`` (goal within the window,
  :func:`~crm_helpers.journeys.paths.goal_flags`) or ``"drop-outs"``.
- :func:`differential_step_matrix`: for two groups and every ``(position, step)`` cell,
  the share of each group's journeys at that cell, the difference ``b - a`` with its
  Newcombe interval, the pooled two-proportion z-test and Benjamini-Hochberg q-values over
  all tested cells (:mod:`crm_helpers.stats`). Cells with fewer than ``min_journeys``
  journeys in both groups together are not tested.
- :func:`compare_transitions`: share of the source's exits per edge, per group, with the
  same test per edge.
- :func:`conformance_summary`: share of journeys that conform, per group, each group
  against all other journeys (same test, BH across groups).
- :func:`converter_step_matrix`: the step matrix of converters and drop-outs before the
  goal (``until``), without the ``[end]`` / ``[churned]`` cells: a converter's journey
  reaches the goal before it ends, so its ends before the goal are 0 by definition.
- :func:`stage_mapping`: ``{stage: [events]}`` (by default each known event's AARRR stage
  of the shared vocabulary, :func:`crm_helpers.events.aarrr_stage`) to a raw-event ->
  stage mapping; stage flow is :func:`~crm_helpers.journeys.graph.transitions` over the
  journeys prepared with it (unmapped events dropped, repeats collapsed).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd

from crm_helpers import events as ev
from crm_helpers import stats
from crm_helpers.journeys.core import CHURNED, END, START, SYNTHETIC, Prepared
from crm_helpers.journeys.graph import transitions
from crm_helpers.journeys.paths import goal_flags, paths, step_matrix

__all__ = [
    "group_paths",
    "AARRR",
    "compare_transitions",
    "conformance_summary",
    "converter_groups",
    "converter_step_matrix",
    "deviations",
    "differential_step_matrix",
    "edges_metric",
    "paths_between",
    "restrict",
    "sankey_data",
    "stage_journeys",
    "stage_mapping",
    "user_groups",
]

#: The AARRR stages and every event name each takes, from the one vocabulary
#: (:data:`crm_helpers.events.AARRR_STAGES`); a parameter of the report.
AARRR: dict[str, list[str]] = {
    stage: list(
        dict.fromkeys(
            [n for st, names in ev.EVENT_STAGES if st in shopping for n in (st, *names)]
            + list(extra)
        )
    )
    for stage, shopping, extra in ev.AARRR_STAGES
}


def prepared_arrays(data: Any, spec: Any, events_changed: bool = False) -> Any:
    """The prepared event arrays of ``data`` for ``spec``'s journeys, or None.

    ``crm_helpers.store.event_arrays(data, columns=...)`` with the property columns the step
    rules read and the session column, so that ``prepare(events, spec, arrays=...)`` takes
    the sorted-array kernel (:mod:`crm_helpers.journeys.kernel`) where it can. None when the
    journeys are not built from ``data``'s events as they are (``events_changed``: e.g. the
    orders joined as events by :func:`crm_helpers.journeys.defaults.with_orders`, which the
    arrays do not hold), and on Spark and warehouses (the store's own None).
    """
    if events_changed:
        return None
    from crm_helpers import store

    cols = {c for _, _, where in (spec.rules or ()) for c in (where or {})}
    if spec.session_column:
        cols.add(spec.session_column)
    return store.event_arrays(data, columns=tuple(sorted(cols)))


def sankey_data(
    paths_df: pd.DataFrame,
    direction: str = "after",
    total: int | None = None,
    users: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Nodes and links of a Sankey diagram from path counts.

    Parameters
    ----------
    paths_df
        Output of :func:`~crm_helpers.journeys.paths.paths` (``path``, ``journeys``).
    direction
        ``"after"``: the anchor is each path's first step (level 0, then 1, 2 ...);
        ``"before"``: its last step (level 0, before it -1, -2 ...).
    total
        What shares divide by (default: all journeys of ``paths_df``), e.g. all journeys
        with the start event when ``paths_df`` holds only those that reach the end.
    users
        :func:`~crm_helpers.journeys.paths.node_users` of the same paths: adds ``users``
        (distinct users at the node) and ``user_share`` (of the users at level 0) to nodes.

    Returns
    -------
    (nodes, links)
        ``nodes``: ``level, step, journeys, share`` (and ``users, user_share``); ``links``:
        ``source_level, source, target_level, target, journeys, share``.
    """
    if total is None:
        total = int(paths_df["journeys"].sum()) if len(paths_df) else 0
    nodes: dict[tuple[int, str], int] = {}
    links: dict[tuple[int, str, int, str], int] = {}
    for path, n in zip(paths_df["path"], paths_df["journeys"], strict=True):
        off = 0 if direction == "after" else -(len(path) - 1)
        for i, s in enumerate(path):
            nodes[(i + off, s)] = nodes.get((i + off, s), 0) + int(n)
            if i:
                key = (i - 1 + off, path[i - 1], i + off, s)
                links[key] = links.get(key, 0) + int(n)
    nd = pd.DataFrame(
        [(lv, s, n) for (lv, s), n in nodes.items()], columns=["level", "step", "journeys"]
    )
    lk = pd.DataFrame(
        [(*k, n) for k, n in links.items()],
        columns=["source_level", "source", "target_level", "target", "journeys"],
    )
    for df in (nd, lk):
        df["share"] = df["journeys"] / total if total else 0.0
    nd = nd.sort_values(["level", "journeys", "step"], ascending=[True, False, True])
    lk = lk.sort_values(["source_level", "journeys"], ascending=[True, False])
    if users is not None:
        nd = nd.merge(users[["level", "step", "users"]], on=["level", "step"], how="left")
        nd["users"] = nd["users"].fillna(0).astype("int64")
        base = int(users.loc[users["level"] == 0, "users"].sum())
        nd["user_share"] = nd["users"] / base if base else 0.0
    return nd.reset_index(drop=True), lk.reset_index(drop=True)


def paths_between(paths_df: pd.DataFrame, end: str) -> pd.DataFrame:
    """Paths (after a start anchor) that reach ``end``, cut at its first occurrence.

    Returns
    -------
    DataFrame
        ``path, journeys, share`` (share of all journeys with the start anchor).
    """
    total = int(paths_df["journeys"].sum()) if len(paths_df) else 0
    rows: dict[tuple, int] = {}
    for path, n in zip(paths_df["path"], paths_df["journeys"], strict=True):
        if end in path[1:]:
            cut = tuple(path[: path.index(end, 1) + 1])
            rows[cut] = rows.get(cut, 0) + int(n)
    out = pd.DataFrame({"path": list(rows), "journeys": list(rows.values())}, dtype=object)
    out["journeys"] = out["journeys"].astype("int64")
    out["share"] = out["journeys"] / total if total else 0.0
    out = out.assign(_k=out["path"].map(" > ".join))
    out = out.sort_values(["journeys", "_k"], ascending=[False, True], ignore_index=True)
    return out.drop(columns="_k")


def restrict(prep: Prepared, journeys: ir.Table) -> Prepared:
    """The prepared journeys whose keys appear in ``journeys`` (a null-safe semi join)."""
    return replace(prep, table=prep.semi_join_keys(prep.table, journeys), arrays=None)


def group_paths(
    prep: Prepared,
    groups: ir.Table,
    names: Sequence[str],
    anchor: str,
    depth: int = 3,
    direction: str = "after",
) -> dict[str, pd.DataFrame]:
    """:func:`~crm_helpers.journeys.paths` per group: each group's journeys alone.

    Parameters
    ----------
    groups
        Journey keys with a ``group`` column (:func:`converter_groups`, :func:`user_groups`).
    names
        The groups to show, in order.

    Returns
    -------
    dict
        Group name -> the ``paths`` table of its journeys (``path, journeys, share``;
        shares within the group; empty when the anchor never occurs there).
    """
    return {
        g: paths(restrict(prep, groups.filter(groups.group == g)), anchor, depth, direction)
        for g in names
    }


def converter_step_matrix(
    prep: Prepared, groups: ir.Table, goal: str, max_steps: int = 8
) -> pd.DataFrame:
    """:func:`~crm_helpers.journeys.paths.step_matrix` of converters and drop-outs before
    the goal, without ``[end]`` / ``[churned]`` cells (see the module docstring)."""
    m = step_matrix(prep, max_steps, groups=groups, until=goal)
    return m[~m["step"].isin([END, CHURNED])].reset_index(drop=True)


def converter_groups(prep: Prepared, goal: str, window_days: float | None = None) -> ir.Table:
    """Journey keys with ``group`` = ``"converters"`` or ``"drop-outs"`` (see the module)."""
    g = goal_flags(prep, goal, window_days)
    return g.select(*prep.keys, group=ibis.ifelse(g.converted, "converters", "drop-outs"))


def user_groups(prep: Prepared, users: ir.Table, column: str) -> ir.Table:
    """Journey keys with ``group`` = the user's ``column`` (empty values: ``"(none)"``)."""
    if column not in users.columns:
        raise ValueError(f"users has no column {column!r} (columns: {sorted(users.columns)})")
    keys = list(prep.keys)
    j = prep.table.select(*keys).distinct()
    u = users.select("user_id", group=users[column].cast("string").fill_null("(none)"))
    return j.join(u, "user_id").select(*keys, "group")


def _tests(sa, na, sb, nb, alpha: float) -> dict[str, np.ndarray]:
    res = stats.two_proportion_test(
        stats.Proportion(np.asarray(sa, float), np.asarray(na, float)),
        stats.Proportion(np.asarray(sb, float), np.asarray(nb, float)),
        alpha=alpha,
    )
    return {
        "diff": np.atleast_1d(res.diff),
        "ci_low": np.atleast_1d(res.ci_low),
        "ci_high": np.atleast_1d(res.ci_high),
        "p_value": np.atleast_1d(res.p_value),
    }


def _with_fdr(out: pd.DataFrame, tested: np.ndarray, alpha: float) -> pd.DataFrame:
    p = np.where(tested, out["p_value"].to_numpy(float), np.nan)
    rejected, q = stats.benjamini_hochberg(p, q=alpha)
    out["p_value"] = p
    out["q_value"] = q
    out["significant"] = rejected
    return out


def differential_step_matrix(
    matrix: pd.DataFrame,
    group_a: str,
    group_b: str,
    *,
    alpha: float = 0.05,
    min_journeys: int = 20,
) -> pd.DataFrame:
    """Cell-by-cell comparison of two groups' step matrices (see the module docstring).

    Parameters
    ----------
    matrix
        :func:`~crm_helpers.journeys.paths.step_matrix` with ``groups`` containing both.

    Returns
    -------
    DataFrame
        One row per ``(position, step)`` seen in either group: ``journeys_a, n_a, share_a,
        journeys_b, n_b, share_b, diff (b - a), ci_low, ci_high, p_value, q_value,
        significant`` (untested cells have NaN p/q and are not significant).
    """
    sizes = matrix.drop_duplicates("group").set_index("group")["group_journeys"]
    for g in (group_a, group_b):
        if g not in sizes.index:
            raise ValueError(f"group {g!r} is not in the step matrix (groups: {list(sizes.index)})")
    cells = matrix.pivot_table(
        index=["position", "step"], columns="group", values="journeys", aggfunc="sum", fill_value=0
    )
    cells = cells.reindex(columns=[group_a, group_b], fill_value=0)
    out = pd.DataFrame(
        {
            "position": cells.index.get_level_values(0).astype("int64"),
            "step": cells.index.get_level_values(1),
            "journeys_a": cells[group_a].to_numpy("int64"),
            "n_a": int(sizes[group_a]),
            "journeys_b": cells[group_b].to_numpy("int64"),
            "n_b": int(sizes[group_b]),
        }
    )
    out["share_a"] = out["journeys_a"] / out["n_a"]
    out["share_b"] = out["journeys_b"] / out["n_b"]
    out = out.assign(**_tests(out.journeys_a, out.n_a, out.journeys_b, out.n_b, alpha))
    tested = (out["journeys_a"] + out["journeys_b"] >= min_journeys).to_numpy()
    out = _with_fdr(out, tested, alpha)
    return out.sort_values(["position", "step"], ignore_index=True)


def compare_transitions(
    prep: Prepared,
    groups: ir.Table,
    group_a: str,
    group_b: str,
    *,
    alpha: float = 0.05,
    min_transitions: int = 20,
) -> pd.DataFrame:
    """Each edge's share of its source's exits in two groups of journeys, tested.

    Returns
    -------
    DataFrame
        ``source, target, count_a, exits_a, share_a, count_b, exits_b, share_b, diff,
        ci_low, ci_high, p_value, q_value, significant``; by ``|diff|`` descending.
    """
    # both groups' edges in one query (one LEAD over the journeys of the two groups)
    both = transitions(
        prep, timings=False, groups=groups.filter(groups.group.isin([group_a, group_b]))
    )
    parts = []
    for g, suffix in ((group_a, "a"), (group_b, "b")):
        t = both[both["group"] == str(g)]
        t = t.assign(**{f"exits_{suffix}": t.groupby("source")["count"].transform("sum")})
        parts.append(
            t[["source", "target", "count", f"exits_{suffix}"]].rename(
                columns={"count": f"count_{suffix}"}
            )
        )
    out = parts[0].merge(parts[1], on=["source", "target"], how="outer")
    for s in ("a", "b"):
        out[f"count_{s}"] = out[f"count_{s}"].fillna(0).astype("int64")
        ex = out.groupby("source")[f"exits_{s}"].transform("max")
        out[f"exits_{s}"] = ex.fillna(0).astype("int64")
        with np.errstate(divide="ignore", invalid="ignore"):
            out[f"share_{s}"] = out[f"count_{s}"] / out[f"exits_{s}"].replace(0, np.nan)
    out = out.assign(**_tests(out.count_a, out.exits_a, out.count_b, out.exits_b, alpha))
    tested = (
        (out["exits_a"] > 0)
        & (out["exits_b"] > 0)
        & (out["count_a"] + out["count_b"] >= min_transitions)
    ).to_numpy()
    out = _with_fdr(out, tested, alpha)
    order = out["diff"].abs().fillna(-1).sort_values(ascending=False).index
    return out.loc[order].reset_index(drop=True)


def conformance_summary(
    conf: pd.DataFrame, n_steps: int, *, alpha: float = 0.05, min_journeys: int = 20
) -> pd.DataFrame:
    """Conformance rate per group, each group tested against all other journeys.

    Parameters
    ----------
    conf
        :func:`~crm_helpers.journeys.paths.conformance` output.
    n_steps
        Length of the intended journey.

    Returns
    -------
    DataFrame
        ``group, journeys, conforming, rate, ci_low, ci_high, rest_rate, diff, p_value,
        q_value, significant`` (diff = group - rest; one group alone is not tested).
    """
    g = conf.assign(ok=np.where(conf["matched"] == n_steps, conf["journeys"], 0))
    by = g.groupby("group", as_index=False).agg(
        journeys=("journeys", "sum"), conforming=("ok", "sum")
    )
    by["rate"] = by["conforming"] / by["journeys"]
    lo, hi = stats.wilson_interval(by["conforming"].to_numpy(), by["journeys"].to_numpy())
    by["ci_low"], by["ci_high"] = np.atleast_1d(lo), np.atleast_1d(hi)
    rest_n = by["journeys"].sum() - by["journeys"]
    rest_s = by["conforming"].sum() - by["conforming"]
    with np.errstate(divide="ignore", invalid="ignore"):
        by["rest_rate"] = rest_s / rest_n.replace(0, np.nan)
    res = _tests(rest_s, rest_n, by["conforming"], by["journeys"], alpha)
    by = by.assign(**res)
    tested = ((by["journeys"] >= min_journeys) & (rest_n >= min_journeys)).to_numpy()
    by = _with_fdr(by, tested, alpha)
    return by.sort_values("journeys", ascending=False, ignore_index=True)


def deviations(conf: pd.DataFrame, intended: Sequence[str]) -> pd.DataFrame:
    """Where journeys leave the intended sequence: one row per ``(matched, next_step)``.

    Returns
    -------
    DataFrame
        ``after_step`` (the last intended step matched; None: never started),
        ``next_step`` (what they did instead; None: the journey ended), ``journeys``,
        ``share`` (of all journeys); conforming journeys excluded; by journeys descending.
    """
    total = conf["journeys"].sum()
    d = conf[conf["matched"] < len(intended)]
    d = d.groupby(["matched", "next_step"], dropna=False, as_index=False)["journeys"].sum()
    d["after_step"] = [intended[m - 1] if m else None for m in d["matched"]]
    d["next_step"] = d["next_step"].astype(object).where(d["next_step"].notna(), None)
    d["share"] = d["journeys"] / total if total else 0.0
    return d.sort_values("journeys", ascending=False, ignore_index=True)[
        ["after_step", "next_step", "journeys", "share"]
    ]


def stage_mapping(
    stages: Mapping[str, Sequence[str]] | None = None, known: Sequence[str] | None = None
) -> dict[str, str]:
    """``{stage: [raw events]}`` -> ``{raw event: stage}``; only ``known`` events if given.

    Without ``stages``: :data:`AARRR`, and with ``known`` each known event's AARRR stage
    ignoring case (:func:`crm_helpers.journeys.defaults.aarrr_mapping`).
    ``ValueError`` when an event is listed under two stages.
    """
    if stages is None and known is not None:
        from crm_helpers.journeys.defaults import aarrr_mapping

        return aarrr_mapping(known)[0]
    stages = AARRR if stages is None else stages
    out: dict[str, str] = {}
    for stage, evs in stages.items():
        if isinstance(evs, str):
            evs = [evs]
        for e in evs:
            if e in out and out[e] != stage:
                raise ValueError(f"event {e!r} is in two stages: {out[e]!r} and {stage!r}")
            out[str(e)] = str(stage)
    if known is not None:
        ks = set(known)
        out = {e: s for e, s in out.items() if e in ks}
    return out


def stage_journeys(prep: Prepared, stage_map: Mapping[str, str]) -> Prepared:
    """The prepared journeys in stages: each step replaced by its stage, steps without a
    stage removed (synthetic ``[start]`` / ``[end]`` / ``[churned]`` rows kept), then
    consecutive repeats collapsed; the journeys' order is kept (ties are not re-ordered).

    Parameters
    ----------
    stage_map
        ``{step name: stage name}`` (e.g. :func:`stage_mapping`).
    """
    names = sorted({str(v) for v in stage_map.values()})
    vocab = (START, *names, END, CHURNED)
    recode = {}
    for code, name in enumerate(prep.vocab):
        if name in SYNTHETIC:
            recode[code] = vocab.index(name)
        elif name in stage_map:
            recode[code] = vocab.index(str(stage_map[name]))
    keys = list(prep.keys)
    p = prep.with_pos()
    x = p.mutate(code=p.code.substitute(recode, else_=ibis.null("int32")).cast("int32"))
    x = x.filter(x.code.notnull())
    w = ibis.window(group_by=keys, order_by="pos")
    x = x.mutate(prev=x.code.lag().over(w))
    x = x.filter(x.prev.isnull() | (x.prev != x.code))
    x = x.mutate(pos=(ibis.row_number().over(w) + 1).cast("int32"))
    return replace(prep, table=x.select(*keys, "t", "code", "pos"), vocab=vocab, arrays=None)


def edges_metric(edges: pd.DataFrame) -> list[dict[str, Any]]:
    """The ``edges`` entry of ``metrics.json``: every edge between real steps as ``{source,
    target, count, share_of_source, median_seconds}``.

    Edges from ``[start]`` and to ``[end]`` / ``[churned]`` are left out and
    ``share_of_source`` is recomputed over the remaining exits, so without a mapping and
    without collapsing this is exactly the directly-follows graph of the raw event names.
    """
    cols = ["source", "target", "count", "share_of_source", "median_seconds"]
    edges = edges[~edges["source"].isin(SYNTHETIC) & ~edges["target"].isin(SYNTHETIC)].copy()
    edges["share_of_source"] = edges["count"] / edges.groupby("source")["count"].transform("sum")
    return [
        {
            "source": str(r.source),
            "target": str(r.target),
            "count": int(r.count),
            "share_of_source": float(r.share_of_source),
            "median_seconds": float(r.median_seconds),
        }
        for r in edges[cols].itertuples(index=False)
    ]
