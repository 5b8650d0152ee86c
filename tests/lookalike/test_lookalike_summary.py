"""Summary lines are safe Markdown; metrics keep the names the issue fixes."""

from __future__ import annotations

import numpy as np
import pandas as pd

from crm_helpers.lookalike.analysis import expand
from crm_helpers.lookalike.narrative import feature_label, metrics_dict, summary_lines
from crm_helpers.lookalike.pipeline import LookalikeRun
from crm_helpers.lookalike.profile import profile_table, top_differences


def test_feature_labels():
    assert feature_label("attr:gender=male") == "gender: male"
    assert feature_label("count:purchase") == "purchase events"
    assert feature_label("category:sports") == "share of sports events"
    assert feature_label("recency_days") == "days since last event"
    assert feature_label("other") == "other"


def test_metrics_names_and_escaped_summary():
    rng = np.random.default_rng(0)
    f = pd.DataFrame(rng.normal(size=(300, 2)), columns=["attr:x=<b>", "count:*y*"])
    f.insert(0, "user_id", np.arange(300))
    ex = expand(f, pd.Series(np.arange(20)), size=30)
    names = ["attr:x=<b>", "count:*y*"]
    prof = profile_table(f[names].to_numpy(), names, ex.masks())
    m = metrics_dict(ex, top_differences(prof))
    assert set(m) == {
        "seeds",
        "audience_size",
        "recall_at_n",
        "lift_at",
        "auc",
        "top_profile_differences",
        "audit_at_audience_size",  # added by the leakage issue; the others are unchanged
    }
    q, a = m["audit_at_audience_size"], ex.audits["default"]
    assert q["n"] == a.n == ex.audience_size == 30  # the audit at the audience built
    assert q["recall"] == m["recall_at_n"]["default"]
    assert q["random_recall"] == 30 / a.n_candidates
    assert q["lift"] == q["recall"] / (30 / a.n_candidates)
    assert set(m["seeds"]) == {"given", "found", "held_out"}
    assert set(m["recall_at_n"]) == {"default", "centroid", "random"}
    assert set(m["lift_at"]) == {"1%", "5%", "10%"}
    run = LookalikeRun(None, f, "<script>alert(1)</script>.csv", 300, 0, 0, ex)
    text = "\n".join(summary_lines(run, prof))
    assert "<script>" not in text and "&lt;script&gt;" in text
    assert "<b>" not in text
    assert f"**{q['lift']:.1f} times** as many hidden seeds as a random audience" in text


def _overlap():
    from crm_helpers.lookalike.overlap import NO_PURCHASE, overlap_table

    rows = [
        ("population", "rfm", "Champions", 10),
        ("population", "rfm", "Loyal", 40),
        ("population", "rfm", NO_PURCHASE, 950),
        ("lookalikes", "rfm", "Champions", 1),  # 1% of the lookalikes: too few to name
        ("lookalikes", "rfm", "Loyal", 20),
        ("lookalikes", "rfm", NO_PURCHASE, 79),
        ("population", "health", "active", 1000),
        ("lookalikes", "health", "active", 100),
    ]
    counts = pd.DataFrame(rows, columns=["group", "segmentation", "segment", "users"])
    return overlap_table(counts)


def test_overlap_metrics_and_line():
    from crm_helpers.lookalike.narrative import overlap_line, overlap_metrics

    t = _overlap()
    m = overlap_metrics(t)
    assert set(m) == {"rfm", "health"}
    loyal = next(r for r in m["rfm"] if r["segment"] == "Loyal")
    assert loyal["lookalikes_share"] == 0.2 and loyal["population_share"] == 0.04
    assert loyal["lookalikes_index"] == 500.0
    line = str(overlap_line(t))
    # Loyal (index 500, 20% of the lookalikes), not Champions (index 100, 1%); the health
    # states say nothing (index 100)
    assert "**Loyal** (20% of the lookalikes vs 4.0% of everyone, 5.0×)" in line
    assert "health" not in line and "Champions" not in line
    assert overlap_line(t[t.segmentation == "health"]) is None
    assert overlap_line(t.iloc[:0]) is None


def test_overlap_figure():
    from crm_helpers.plots.lookalike import plot_segment_overlap

    fig = plot_segment_overlap(_overlap())
    assert [t.meta["group"] for t in fig.data] == ["lookalikes"]  # no seeds group here
    assert list(fig.data[0].y)[0] == "health state: active"  # last row on top
    assert list(fig.data[0].x)[-1] == 100.0  # Champions (first row) at the bottom
