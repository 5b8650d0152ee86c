"""The opt-out event: the ``unsubscribe`` stage of the shared vocabulary and its derivation.

The vocabulary (``crm_helpers.events.OTHER_STAGES``) finds the data's opt-out event; it is
not a funnel step nor an AARRR stage; spam complaints are not opt-outs. The campaign report
derives ``optout_event`` from it (``narrative.choose_optout``), and the opt-out rate per
frequency band equals a brute-force count.
"""

from __future__ import annotations

import ibis
import pandas as pd
import pytest

from crm_helpers import events as ev
from crm_helpers.campaigns import core, frequency, narrative
from crm_helpers.funnels.defaults import SHOPPING_STAGES


@pytest.mark.parametrize(
    ("names", "want"),
    [
        (["visit", "unsubscribe", "opt_out"], "unsubscribe"),  # the stage's order
        (["pv", "Opt_Out"], "Opt_Out"),  # ignoring case
        (["buy", "email_unsubscribe"], "email_unsubscribe"),
        (["optout"], "optout"),
        (["sms_opt_out", "spam_complaint"], "sms_opt_out"),
        (["spam_complaint", "bounce", "stop", "push_disabled"], None),  # not opt-outs
        (["visit", "buy"], None),
    ],
)
def test_unsubscribe_stage_finds_the_opt_out_event(names, want):
    assert ev.stage_event("unsubscribe", names) == want


def test_aliases_resolve_and_stay_out_of_funnels_and_aarrr():
    assert ev.stage_of("Unsubscribed") == "unsubscribe"
    assert ev.resolve_event("unsubscribe", ["pv", "opt_out"]) == (
        "opt_out",
        "'unsubscribe' is named 'opt_out' in the data",
    )
    assert "unsubscribe" not in dict(SHOPPING_STAGES)
    assert ev.aarrr_stage("unsubscribe") is None
    assert ev.stage_of("spam_complaint") is None


class _Data:
    """The two members of ``CRMData`` that ``choose_optout`` reads."""

    def __init__(self, events: pd.DataFrame | None):
        self._events = None if events is None else ibis.memtable(events)

    def has(self, table, *columns):
        return table == "events" and self._events is not None

    @property
    def events(self):
        return self._events


def _events(names):
    ts = pd.Timestamp("2024-03-04 10:00")
    return pd.DataFrame({"user_id": ["a"] * len(names), "event": names, "ts": [ts] * len(names)})


def test_choose_optout_derives_or_says_why_not():
    name, how = narrative.choose_optout(_Data(_events(["pv", "Email_Unsubscribe", "buy"])))
    assert name == "Email_Unsubscribe"
    assert "opt-out vocabulary" in how and "unsubscribe" in how
    assert narrative.choose_optout(_Data(_events(["pv", "spam_complaint"])))[0] is None
    name, how = narrative.choose_optout(_Data(None))
    assert name is None and "no events table" in how


def test_opt_out_rate_per_band_equals_a_brute_force_count():
    t0 = pd.Timestamp("2024-03-04 09:00")
    sends = [("a", 0), ("a", 24), ("a", 48), ("b", 0), ("b", 30), ("c", 5), ("d", 7)]
    m = pd.DataFrame(
        {
            "message_id": range(len(sends)),
            "user_id": [u for u, _ in sends],
            "campaign_id": "c",
            "channel": "email",
            "sent_at": [t0 + pd.Timedelta(hours=h) for _, h in sends],
            "clicked_at": pd.NaT,
        }
    )
    m["sent_at"] = m["sent_at"].astype("datetime64[us]")
    m["clicked_at"] = m["clicked_at"].astype("datetime64[us]")
    m.loc[0, "clicked_at"] = t0 + pd.Timedelta(minutes=5)
    opt = pd.DataFrame(
        {"user_id": ["a", "c"], "ts": [t0 + pd.Timedelta(hours=50), t0 + pd.Timedelta(hours=6)]}
    )
    opt["ts"] = opt["ts"].astype("datetime64[us]")
    facts = core.message_facts(ibis.memtable(m), fatigue_window_days=7.0)
    counts = core.frequency_counts(core.with_optouts(facts, ibis.memtable(opt), 3.0))
    got = frequency.frequency_table(counts, "click_rate").set_index("count")
    # brute force: band = the user's earlier sends in 7 days; opted out = an opt-out in
    # (sent, sent + 3 days]
    rows = []
    for r in m.itertuples():
        band = int(((m.user_id == r.user_id) & (m.sent_at < r.sent_at)).sum())
        o = opt[opt.user_id == r.user_id].ts
        rows.append((band, bool(((o > r.sent_at) & (o <= r.sent_at + pd.Timedelta(days=3))).any())))
    want = pd.DataFrame(rows, columns=["count", "out"]).groupby("count")["out"].agg(["sum", "mean"])
    assert got["optouts"].tolist() == want["sum"].tolist() == [2, 1, 1]
    assert got["optout_rate"].tolist() == pytest.approx(want["mean"].tolist())
