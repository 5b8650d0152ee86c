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
    }
    assert set(m["seeds"]) == {"given", "found", "held_out"}
    assert set(m["recall_at_n"]) == {"default", "centroid", "random"}
    assert set(m["lift_at"]) == {"1%", "5%", "10%"}
    run = LookalikeRun(None, f, "<script>alert(1)</script>.csv", 300, 0, 0, ex)
    text = "\n".join(summary_lines(run, prof))
    assert "<script>" not in text and "&lt;script&gt;" in text
    assert "<b>" not in text
