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
``GROUP BY (code, next)``; names are decoded from the small result.
"""

from __future__ import annotations

import pandas as pd

from crm_helpers.journeys.core import Prepared

__all__ = ["loops_table", "node_reach", "transitions"]

US_PER_SECOND = 1_000_000.0


def transitions(prep: Prepared, *, timings: bool = True) -> pd.DataFrame:
    """Directly-follows counts (and times) of all transitions.

    Parameters
    ----------
    prep
        Prepared journeys.
    timings
        Also compute ``median_seconds`` and ``p90_seconds`` (one more aggregate per edge).

    Returns
    -------
    DataFrame
        One row per edge (``n_edges`` rows): ``source, target, count, share_of_all,
        share_of_source`` (and ``median_seconds, p90_seconds``), by count descending then
        source, target.
    """
    p = prep.table
    w = prep.window()
    x = p.mutate(nxt=p.code.lead().over(w), dt=p.t.lead().over(w) - p.t)
    x = x.filter(x.nxt.notnull())
    aggs = {"count": x.count()}
    if timings:
        aggs["median_us"] = x.dt.quantile(0.5)
        aggs["p90_us"] = x.dt.quantile(0.9)
    df = x.group_by(["code", "nxt"]).aggregate(**aggs).to_pandas()
    out = pd.DataFrame(
        {
            "source": prep.decode(df["code"]),
            "target": prep.decode(df["nxt"]),
            "count": df["count"].astype("int64"),
        }
    )
    total = out["count"].sum()
    out["share_of_all"] = out["count"] / total if total else 0.0
    out["share_of_source"] = out["count"] / out.groupby("source")["count"].transform("sum")
    if timings:
        out["median_seconds"] = df["median_us"].astype(float) / US_PER_SECOND
        out["p90_seconds"] = df["p90_us"].astype(float) / US_PER_SECOND
    return out.sort_values(
        ["count", "source", "target"], ascending=[False, True, True], ignore_index=True
    )


def node_reach(prep: Prepared) -> pd.DataFrame:
    """Users, journeys and events per step.

    Returns
    -------
    DataFrame
        One row per step present: ``step, users, journeys, events, share_of_users`` (users
        / all users with a journey), by users descending then step.
    """
    p = prep.table
    jid = _journey_id(prep)
    x = p.mutate(jid=jid)
    df = (
        x.group_by("code")
        .aggregate(users=x.user_id.nunique(), journeys=x.jid.nunique(), events=x.count())
        .to_pandas()
    )
    n_users = int(p.user_id.nunique().to_pyarrow().as_py() or 0)
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


def _journey_id(prep: Prepared):
    p = prep.table
    if len(prep.keys) == 1:
        return p.user_id.cast("string")
    return p.user_id.cast("string") + ":" + p.session.cast("string").fill_null("")
