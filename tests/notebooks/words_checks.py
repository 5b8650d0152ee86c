"""Checks of a report's words on foreign-shaped data (used by ``test_foreign_shapes``).

* :func:`overview_words`: the data overview's orders figures (``metrics.orders.*``) and its
  summary sentence against plain pandas on the shape's orders: customers are the users with
  a purchase (``revenue >= 0``), revenue is named gross and net.
* :func:`segments_words`: the segment report's ``metrics.customers`` / ``users_seen`` and
  the summary's first two lines (customers; the health states of the population named).
* :func:`no_placeholder`: a skip note holds no command with an empty placeholder.
"""

from __future__ import annotations

import re

import pandas as pd
import pytest

#: ``-p name`` followed by a placeholder: ``<column>``, ``[""]``, or nothing (``-p name .``).
PLACEHOLDER = re.compile(r"""-p \w+ (?:[^\n]*?<(?!/?code>)[a-z_ ]+>|[^\n]*?\[\\*"\\*"\]|\.)""")


def no_placeholder(note: str) -> None:
    """A skip note (Markdown as rendered) suggests no command with an empty placeholder."""
    assert not PLACEHOLDER.search(note), note


def overview_words(m: dict, frames: dict[str, pd.DataFrame]) -> None:
    if "orders" not in frames:
        return
    o, got = frames["orders"], m["metrics"]
    buy = o["revenue"] >= 0
    assert got["orders.purchases"] == int(buy.sum())
    assert got["orders.gross_revenue"] == pytest.approx(o.loc[buy, "revenue"].sum(), abs=1e-9)
    text = " ".join(m["summary"])
    refunds = int((~buy).sum())
    if "user_id" in o:
        c = o.loc[buy, "user_id"].nunique()
        assert got["orders.customers"] == c
        assert got["orders.users_with_orders"] == o["user_id"].nunique()
        assert got["orders.revenue_per_customer"] == pytest.approx(o["revenue"].sum() / c)
        head = (
            f"{len(o):,} orders: {int(buy.sum()):,} purchases by {c:,} customers"
            if refunds
            else f"{len(o):,} orders by {c:,} customers"
        )
        assert head in text, text
    if refunds:
        assert f"leaving {o['revenue'].sum():,.2f} in net revenue" in text
    aov = o.loc[o["revenue"] > 0, "revenue"].mean()
    assert f"An order with positive revenue is worth {aov:,.2f} on average (gross" in text


def segments_words(m: dict, frames: dict[str, pd.DataFrame]) -> None:
    """For shapes without events (the health states are then the customers')."""
    o, got = frames["orders"], m["metrics"]
    assert "events" not in frames
    assert got["users_seen"] == sum(got["states"].values())
    assert got["customers"] == sum(r["customers"] for r in got["rfm_segments"])
    assert got["users_seen"] == got["customers"]
    if "user_id" in o:  # the as-of date is the last order's: every order counts
        assert got["customers"] == o.loc[o["revenue"] >= 0, "user_id"].nunique()
    c = got["customers"]
    assert m["summary"][0].startswith(f"{c:,} customers as of "), m["summary"][0]
    assert m["summary"][1].startswith(f"Health of the {c:,} customers by their purchases: ")
