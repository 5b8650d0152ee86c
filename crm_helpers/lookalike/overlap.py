"""Overlap of the seeds and the lookalike audience with existing segments (in the engine).

Two segmentations from :mod:`crm_helpers.segments`, both at the last day of the lookalike
window (``as_of - 1 day``, because the window's ``as_of`` is exclusive and the segments'
``as_of`` is an inclusive day):

- ``rfm``: the RFM segment of :func:`crm_helpers.segments.rfm_table` (default rules) for
  users with a purchase up to that day; everyone else is :data:`NO_PURCHASE`. Needs
  ``orders``; without them this segmentation is left out (see :func:`overlap_counts`).
- ``health``: the health state of :func:`crm_helpers.segments.states.rule_states`
  (default :class:`~crm_helpers.segments.states.HealthRules`) from the activity days of
  orders (when present) and events; users never active up to that day are
  :data:`NO_ACTIVITY`.

For each group (e.g. ``seeds``, ``lookalikes``) and the ``population``:
``users`` = the group's users in the segment, ``share`` = ``users`` / the group's size
(shares of one segmentation sum to 1 per group), and for the groups ``index`` = 100 x the
group's share / the population's share (100 = like everyone, 200 = twice as common; NaN when
the population has nobody in the segment).

The per-user labels are joined and counted in the engine; only the counts per (group,
segmentation, segment) come back. The group ids are sent to the engine as one small table
(``user_id, group``); the population is :func:`crm_helpers.lookalike.features.population`
(everyone) unless a population id list is given (a filtered population).
"""

from __future__ import annotations

import ibis
import pandas as pd

from crm_helpers.lookalike.features import population as _population
from crm_helpers.segments.analysis import STATES
from crm_helpers.segments.core import DEFAULT_RULES, OTHER, rfm_table
from crm_helpers.segments.states import activity_days, rule_states

__all__ = ["NO_ACTIVITY", "NO_PURCHASE", "overlap_counts", "overlap_table", "segment_labels"]

NO_PURCHASE = "(no purchase)"
NO_ACTIVITY = "(no activity)"
SEGMENTATIONS = {"rfm": "RFM segment", "health": "health state"}


def _last_day(as_of) -> str:
    return str((pd.Timestamp(as_of) - pd.Timedelta(days=1)).date())


def segment_labels(data, as_of, users: ibis.Table | None = None) -> ibis.Table:
    """Per user of ``users`` (default: the population): ``user_id, rfm?, health``.

    ``rfm`` only when the data have ``orders``. Lazy Ibis table (see the module docstring).
    """
    day = _last_day(as_of)
    users = _population(data) if users is None else users
    out = users.select("user_id")
    orders = data.orders if data.has("orders") else None
    if orders is not None:
        rfm = rfm_table(orders, day).select("user_id", _rfm="segment")
        out = out.left_join(rfm, "user_id").select(out, rfm["_rfm"])
    states = rule_states(activity_days(orders, data.events), day).select("user_id", _health="state")
    out = out.left_join(states, "user_id").select(out, states["_health"])
    cols = {"health": out["_health"].fill_null(NO_ACTIVITY)}
    if orders is not None:
        cols = {"rfm": out["_rfm"].fill_null(NO_PURCHASE), **cols}
    return out.select("user_id", **cols)


def overlap_counts(
    data,
    as_of,
    groups: dict[str, pd.Series],
    population_ids: pd.Series | None = None,
) -> pd.DataFrame:
    """Users per (group, segmentation, segment), counted in the engine.

    Parameters
    ----------
    data : CRMData
        Needs ``events``; ``orders`` adds the RFM segmentation.
    as_of : Timestamp
        The lookalike window's end (exclusive); segments are taken at the day before.
    groups : dict of str to Series
        Group name -> user ids (e.g. ``{"seeds": ..., "lookalikes": ...}``); not
        ``"population"``. Ids not in the population are not counted.
    population_ids : Series, optional
        The population's ids when it is not everyone (a population filter).

    Returns
    -------
    pandas.DataFrame
        ``group, segmentation, segment, users`` (long; zero counts absent), sorted by the
        order of ``groups`` (then ``population``), segmentation and segment.
    """
    if "population" in groups:
        raise ValueError("'population' is reserved: it is always counted")
    frames = [
        pd.DataFrame({"user_id": pd.Series(ids).drop_duplicates().to_numpy(), "group": g})
        for g, ids in groups.items()
    ]
    pop = _population(data)
    if population_ids is not None:
        frames.append(pd.DataFrame({"user_id": pd.Series(population_ids).unique()}))
        frames[-1]["group"] = "population"
    ids = pd.concat(frames, ignore_index=True) if frames else None
    labels = segment_labels(data, as_of, pop)
    segs = [c for c in labels.columns if c != "user_id"]
    parts = []
    if ids is not None and len(ids):
        ids["user_id"] = ids["user_id"].astype(_id_dtype(labels))
        gt = ibis.memtable(ids)
        joined = labels.inner_join(gt, "user_id")
        parts.append(joined)
    if population_ids is None:
        parts.append(labels.mutate(group=ibis.literal("population")))
    rows = []
    for t in parts:
        for s in segs:
            c = t.group_by(["group", s]).agg(users=t.user_id.count()).to_pandas()
            rows.append(c.rename(columns={s: "segment"}).assign(segmentation=s))
    out = pd.concat(rows, ignore_index=True)
    out["users"] = out["users"].astype("int64")
    # the engine's row order is arbitrary (Spark's differs run to run): groups in the order
    # given, then segmentation and segment, so every engine returns the same frame
    rank = {g: i for i, g in enumerate(groups)}
    out = out.assign(_g=out["group"].map(rank).fillna(len(rank)))
    out = out.sort_values(["_g", "group", "segmentation", "segment"], kind="mergesort")
    return out[["group", "segmentation", "segment", "users"]].reset_index(drop=True)


def _id_dtype(labels: ibis.Table):
    typ = labels.schema()["user_id"]
    return "string" if typ.is_string() else typ.to_pandas()


def _order(segmentation: str, segments) -> list[str]:
    if segmentation == "rfm":
        known = [r.segment for r in DEFAULT_RULES] + [OTHER, NO_PURCHASE]
    else:
        known = [*STATES, NO_ACTIVITY]
    present = set(segments)
    return [s for s in known if s in present] + sorted(present - set(known))


def overlap_table(counts: pd.DataFrame, sizes: dict[str, int] | None = None) -> pd.DataFrame:
    """Shares and index vs the population from :func:`overlap_counts` (pure pandas).

    Parameters
    ----------
    counts : pandas.DataFrame
        ``group, segmentation, segment, users`` with a ``population`` group.
    sizes : dict, optional
        Group sizes (denominators of the shares); default: each group's users summed over
        one segmentation (every user has exactly one segment per segmentation).

    Returns
    -------
    pandas.DataFrame
        One row per (segmentation, segment) in the segments' own order:
        ``segmentation, segment, population_users, population_share`` and per other group
        ``<group>_users, <group>_share, <group>_index``.
    """
    if not len(counts):
        return pd.DataFrame(columns=["segmentation", "segment"])
    wide = counts.pivot_table(
        index=["segmentation", "segment"], columns="group", values="users", aggfunc="sum"
    ).fillna(0)
    if "population" not in wide.columns:
        raise ValueError("the counts have no 'population' group to compare with")
    groups = ["population", *[g for g in dict.fromkeys(counts["group"]) if g != "population"]]
    frames = []
    for seg_name in [s for s in SEGMENTATIONS if s in wide.index.get_level_values(0)]:
        w = wide.loc[seg_name]
        w = w.reindex(_order(seg_name, w.index))
        out = pd.DataFrame({"segmentation": seg_name, "segment": w.index})
        for g in groups:
            n = w[g].to_numpy() if g in w.columns else 0.0
            total = (sizes or {}).get(g, float(w[g].sum()) if g in w.columns else 0.0)
            out[f"{g}_users"] = pd.Series(n, dtype="float64").astype("int64").to_numpy()
            out[f"{g}_share"] = n / total if total else float("nan")
        pop = out["population_share"].where(out["population_share"] > 0)
        for g in groups[1:]:
            out[f"{g}_index"] = 100 * out[f"{g}_share"] / pop
        frames.append(out)
    return pd.concat(frames, ignore_index=True)
