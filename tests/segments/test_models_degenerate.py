"""segments.analysis.fit_models on data whose BG/NBD maximum likelihood is degenerate."""

from __future__ import annotations

import numpy as np
import pandas as pd


def test_degenerate_bgnbd_fit_is_refitted_with_a_small_penalty_and_said(tmp_path):
    """60 customers, 5 weeks, few repeats: the plain MLE runs off to the boundary (r, alpha
    ~1e18, every prediction NaN; it used to divide by zero on the way). fit_models refits with
    a small L2 penalty, says so, and the CLV is finite."""
    import ibis

    from crm_helpers.segments import analysis
    from tests.notebooks.message_shapes import clicks_no_opens

    orders = clicks_no_opens(tmp_path)["orders"]  # the message-log shape's 50 orders
    orders = orders.assign(ts=pd.to_datetime(orders["ts"], utc=True).dt.tz_localize(None))
    end = orders["ts"].max()
    fit = analysis.fit_models(ibis.memtable(orders), end, time_unit_days=7.0)
    p = fit.bgnbd.params_
    assert max(p.r, p.alpha, p.a, p.b) < 1e6
    assert "refitted with a small L2 penalty" in fit.extra.get("bgnbd_note", "")
    if fit.gamma_gamma is not None:
        clv = analysis.clv_table(fit, 90 / 7)
        assert np.isfinite(clv.attrs["total"])
