"""Profiles of a group of users (a segment, state or cluster) against the whole base.

Semantics
---------
``members`` is an Ibis table ``user_id, group`` (one row per user; e.g. RFM segments); the
*base* is all its users. For a chosen ``group``:

- *attributes* (:func:`attribute_profile`): for each users column given, the share of the
  group's users with each value (missing values as ``"(missing)"``) with its 95% Wilson
  interval, the base share, and ``index = 100 * group share / base share``;
- *categories*: the same on the group's purchases (orders with ``revenue >= 0``) by
  ``category``: share of the group's purchases vs the base's;
- *engagement* (:func:`engagement_profile`): per message channel, open rate and click rate
  (of messages sent to the group's users) with Wilson intervals, the base rate and the index;
- *value* (:func:`value_profile`): users, share of the base, net revenue per user and
  purchases per user, group vs base, with index.

Counts are computed in the engine; rates and intervals with :mod:`crm_helpers.stats`.
"""

from __future__ import annotations

from typing import Any

import ibis.expr.types as ir
import numpy as np
import pandas as pd

from crm_helpers.stats import wilson_interval

__all__ = ["attribute_profile", "engagement_profile", "value_profile"]

MISSING = "(missing)"


def _shares(g: pd.DataFrame, key: str, count: str, total_g: float, total_b: float) -> pd.DataFrame:
    g = g.copy()
    g["group_share"] = g[f"{count}_group"] / total_g if total_g else np.nan
    lo, hi = wilson_interval(g[f"{count}_group"].to_numpy(), total_g)
    g["ci_low"], g["ci_high"] = lo, hi
    g["base_share"] = g[f"{count}_base"] / total_b if total_b else np.nan
    g["index"] = 100 * g["group_share"] / g["base_share"]
    return g.sort_values(f"{count}_base", ascending=False).reset_index(drop=True)


def attribute_profile(
    members: ir.Table, group: Any, table: ir.Table, columns: list[str]
) -> pd.DataFrame:
    """Shares of each value of ``columns`` of ``table`` (users-level) in the group vs the base.

    Returns
    -------
    pandas.DataFrame
        ``attribute, value, users_group, users_base, group_share, ci_low, ci_high,
        base_share, index``.
    """
    out = []
    j = members.left_join(table, members.user_id == table.user_id)
    n = members.group_by("group").agg(n=members.user_id.count()).to_pandas()
    total_b = float(n["n"].sum())
    total_g = float(n.loc[n["group"] == group, "n"].sum())
    for col in columns:
        v = j[col].cast("string").fill_null(MISSING)
        got = (
            j.group_by([j.group.name("g"), v.name("value")])
            .agg(users=j.user_id.count())
            .to_pandas()
        )
        base = got.groupby("value")["users"].sum().rename("users_base")
        grp = got[got["g"] == group].set_index("value")["users"].rename("users_group")
        df = pd.concat([grp, base], axis=1).fillna(0).astype("int64").reset_index(names="value")
        df = _shares(df, "value", "users", total_g, total_b)
        df.insert(0, "attribute", col)
        out.append(df)
    cols = ["attribute", "value", "users_group", "users_base", "group_share", "ci_low", "ci_high",
            "base_share", "index"]  # fmt: skip
    return pd.concat(out, ignore_index=True)[cols] if out else pd.DataFrame(columns=cols)


def category_profile(members: ir.Table, group: Any, orders: ir.Table) -> pd.DataFrame:
    """Share of purchases per ``category``: group vs base (same columns, ``purchases_*``)."""
    o = orders.filter(orders.revenue >= 0)
    j = o.join(members, "user_id")
    c = j.category.cast("string").fill_null(MISSING)
    got = (
        j.group_by([j.group.name("g"), c.name("value")])
        .agg(purchases=j.user_id.count())
        .to_pandas()
    )
    base = got.groupby("value")["purchases"].sum().rename("purchases_base")
    grp = got[got["g"] == group].set_index("value")["purchases"].rename("purchases_group")
    df = pd.concat([grp, base], axis=1).fillna(0).astype("int64").reset_index(names="value")
    return _shares(
        df,
        "value",
        "purchases",
        float(df["purchases_group"].sum()),
        float(df["purchases_base"].sum()),
    )


def engagement_profile(members: ir.Table, group: Any, messages: ir.Table) -> pd.DataFrame:
    """Open and click rates per channel, group vs base, with Wilson intervals and index.

    Returns
    -------
    pandas.DataFrame
        ``channel, metric (open|click), sent_group, hits_group, rate_group, ci_low, ci_high,
        sent_base, hits_base, rate_base, index``.
    """
    j = messages.join(members, "user_id")
    got = (
        j.group_by([j.group.name("g"), "channel"])
        .agg(
            sent=j.user_id.count(),
            opened=j.opened_at.notnull().ifelse(1, 0).sum(),
            clicked=j.clicked_at.notnull().ifelse(1, 0).sum(),
        )
        .to_pandas()
    )
    rows = []
    for ch, g in got.groupby("channel", sort=True):
        mine = g[g["g"] == group]
        for metric, col in (("open", "opened"), ("click", "clicked")):
            sent_g, hits_g = float(mine["sent"].sum()), float(mine[col].sum())
            sent_b, hits_b = float(g["sent"].sum()), float(g[col].sum())
            lo, hi = wilson_interval(hits_g, sent_g)
            rate_g = hits_g / sent_g if sent_g else np.nan
            rate_b = hits_b / sent_b if sent_b else np.nan
            rows.append({"channel": ch, "metric": metric, "sent_group": int(sent_g), "hits_group": int(hits_g),
                         "rate_group": rate_g, "ci_low": lo, "ci_high": hi, "sent_base": int(sent_b),
                         "hits_base": int(hits_b), "rate_base": rate_b,
                         "index": 100 * rate_g / rate_b if rate_b else np.nan})  # fmt: skip
    return pd.DataFrame(rows)


def value_profile(members: ir.Table, group: Any, rfm: ir.Table) -> pd.DataFrame:
    """Users, revenue and purchases per user of the group vs the base (RFM customers)."""
    r = rfm.select(uid="user_id", monetary="monetary", frequency="frequency")
    j = members.left_join(r, members.user_id == r.uid)
    got = (
        j.group_by(j.group.name("g"))
        .agg(users=j.user_id.count(), revenue=j.monetary.sum(), purchases=j.frequency.sum())
        .to_pandas()
        .fillna(0)
    )
    base, grp = (
        got[["users", "revenue", "purchases"]].sum(),
        got[got["g"] == group].sum(numeric_only=True),
    )
    rows = [
        ("users", grp["users"], base["users"]),
        ("revenue per user", grp["revenue"] / grp["users"] if grp["users"] else np.nan, base["revenue"] / base["users"]),
        ("purchases per user", grp["purchases"] / grp["users"] if grp["users"] else np.nan, base["purchases"] / base["users"]),
    ]  # fmt: skip
    df = pd.DataFrame(rows, columns=["measure", "group", "base"])
    df["index"] = np.where(df["measure"] == "users", np.nan, 100 * df["group"] / df["base"])
    df.attrs["share_of_base"] = float(grp["users"] / base["users"]) if base["users"] else np.nan
    return df
