"""Several campaign_ids named as one message test (``message_test_campaigns``).

An inline fixture where one arm clearly wins: three subject lines sent as three campaigns,
the second with more than twice the click rate. The read-out reuses the experiments
module's statistics; its numbers are checked against statsmodels (Wald difference of two
proportions, unpooled variance, and Holm's adjustment).
"""

from __future__ import annotations

import ibis
import numpy as np
import pandas as pd
import pytest
from statsmodels.stats import proportion as smp
from statsmodels.stats.multitest import multipletests

from crm_helpers.campaigns import analysis, core, holdout, named_tests, narrative

T0 = pd.Timestamp("2024-03-04 09:00")
ARMS = {101: (2000, 100), 102: (2000, 240), 103: (2000, 110)}  # campaign: (sent, clicked)


def _messages() -> pd.DataFrame:
    rows = []
    for cid, (n, k) in ARMS.items():
        for i in range(n):
            clicked = T0 + pd.Timedelta(minutes=3) if i < k else pd.NaT
            rows.append((f"{cid}-{i}", f"u{cid}-{i}", cid, "email", T0, clicked))
    rows.append(("x-1", "u101-0", 102, "email", T0, pd.NaT))  # one user got two arms
    rows.append(("y-1", "v1", 999, "push", T0, pd.NaT))  # a campaign outside the test
    m = pd.DataFrame(
        rows, columns=["message_id", "user_id", "campaign_id", "channel", "sent_at", "clicked_at"]
    )
    m["sent_at"] = m["sent_at"].astype("datetime64[us]")
    m["clicked_at"] = pd.to_datetime(m["clicked_at"]).astype("datetime64[us]")
    return m


@pytest.fixture(scope="module")
def read_out():
    m = ibis.memtable(_messages())
    arms, controls = named_tests.named_message_tests(m, ["101", 102, "103"])
    per_campaign = analysis.rates_table(
        core.scorecard_counts(core.message_facts(m), ("campaign_id",))
    )
    return arms, controls, holdout.message_test_table(arms, per_campaign, controls)


def test_arms_are_the_named_campaigns_with_the_first_as_baseline(read_out):
    arms, controls, _ = read_out
    assert controls == {"message test": "101"}
    assert arms["variant"].tolist() == ["101", "102", "103"]
    assert arms["campaign_id"].tolist() == [101, 102, 103]  # as in the data
    assert arms["users"].tolist() == [2000, 2001, 2000]
    assert arms["overlap_users"].tolist() == [1, 1, 0]
    assert arms["shared_users"].tolist() == [1, 1, 1]


def test_the_clear_winner_wins_and_numbers_match_statsmodels(read_out):
    _, _, t = read_out
    t = t.set_index("variant")
    assert t["baseline"].tolist() == [True, False, False]
    n_a, x_a = 2000, 100
    p_raw = []
    for v in ("102", "103"):
        n_b = int(t.loc[v, "sent"])
        x_b = ARMS[int(v)][1]
        assert t.loc[v, "click_rate"] == pytest.approx(x_b / n_b)
        lo, hi = smp.confint_proportions_2indep(x_b, n_b, x_a, n_a, method="wald", compare="diff")
        _, p = smp.test_proportions_2indep(x_b, n_b, x_a, n_a, method="wald", compare="diff")
        assert t.loc[v, "click_rate_diff"] == pytest.approx(x_b / n_b - x_a / n_a, rel=1e-12)
        assert (t.loc[v, "click_rate_ci_low"], t.loc[v, "click_rate_ci_high"]) == pytest.approx(
            (lo, hi), rel=1e-9
        )
        assert t.loc[v, "click_rate_p"] == pytest.approx(p, rel=1e-6)
        p_raw.append(p)
    holm = multipletests(p_raw, method="holm")[1]
    np.testing.assert_allclose(t.loc[["102", "103"], "click_rate_p_holm"], holm, rtol=1e-6)
    assert t.loc["102", "click_rate_p_holm"] < 0.001 and t.loc["103", "click_rate_p_holm"] > 0.05
    assert t["conversion_rate"].isna().all()  # no conversions table: unknown, not zero


def test_findings_name_the_winner_only(read_out):
    arms, _, t = read_out
    (line,) = narrative.message_test_lines(t)
    assert "<code>102</code> click rate" in line and "Holm p &lt; 0.001" in line
    assert "<code>103</code>" not in line
    note = narrative.named_test_note(arms)
    assert "<code>101</code> (baseline)" in note and "1 recipients got more than one arm" in note
    assert "not assigned by an experiment" in note


def test_no_winner_says_so():
    m = _messages()
    m = m[m["campaign_id"].isin([101, 103])]
    mt = ibis.memtable(m)
    arms, controls = named_tests.named_message_tests(mt, {"subject": [103, 101]})
    sc = analysis.rates_table(core.scorecard_counts(core.message_facts(mt), ("campaign_id",)))
    t = holdout.message_test_table(arms, sc, controls)
    assert t.loc[t["baseline"], "variant"].tolist() == ["103"]
    (line,) = narrative.message_test_lines(t)
    assert "no arm differs significantly from <code>103</code>" in line


def test_spec_errors_name_what_is_wrong():
    m = ibis.memtable(_messages())
    with pytest.raises(ValueError, match=r"do not have: \['77'\].*'101'"):
        named_tests.named_message_tests(m, [101, 77])
    with pytest.raises(ValueError, match="at least two campaigns"):
        named_tests.normalise_spec({"t": [101, "101"]})
    with pytest.raises(ValueError, match="list of campaign ids"):
        named_tests.normalise_spec("101,102")
    assert named_tests.normalise_spec([]) == {}
    arms, controls = named_tests.named_message_tests(m, [])
    assert arms.empty and controls == {}
