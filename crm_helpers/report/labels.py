"""The one vocabulary of the reports' table headers: code name -> the label a reader sees.

:data:`LABELS` maps the column names of the helpers' tables (which are also the names in
``metrics.json``, an interface that never changes) to human labels with their unit, e.g.
``chance_to_beat_control`` -> ``"Chance to beat control"``, ``avg_order_value`` ->
``"Average order value"``. :func:`label` looks a name up and, for a name not (yet) in the
vocabulary, writes it out in words (``"after_step"`` -> ``"After step"``), so that no header
ever shows a code name.

:data:`PERCENT` names the columns that hold rates, shares or probabilities in [0, 1] wherever
they occur (shown as ``12.3%``); :data:`SIGNED_PERCENT` the relative lifts and changes of
shares (shown with their sign, ``+29.3%``). Only names with one meaning in every table are
listed; a table whose column is a share under a generic name says so itself
(``tables.show(..., percent=[...])``).
"""

from __future__ import annotations

__all__ = ["LABELS", "PERCENT", "SIGNED_PERCENT", "label"]

#: code name -> label (with its unit where it has one)
LABELS: dict[str, str] = {
    # people and counts
    "n": "Users",
    "users": "Users",
    "n_users": "Users",
    "count": "Count",
    "rows": "Rows",
    "events": "Events",
    "orders": "Orders",
    "n_orders": "Orders",
    "members": "Members",
    "size": "Users",
    "entered": "Users entering",
    "converted": "Users converting",
    "reached": "Reached",
    "lookalikes": "Lookalikes",
    "seeds": "Seed users",
    "base": "Base users",
    # experiments
    "variant": "Arm",
    "arm": "Arm",
    "metric": "Metric",
    "role": "Role",
    "mean": "Mean per user",
    "diff": "Difference",
    "diff_ci_low": "Difference, lower bound",
    "diff_ci_high": "Difference, upper bound",
    "rel_lift": "Relative lift",
    "rel_ci_low": "Lift, lower bound",
    "rel_ci_high": "Lift, upper bound",
    "p_value": "p-value",
    "p_adjusted": "p-value (corrected)",
    "q_value": "q-value",
    "chance_to_beat_control": "Chance to beat control",
    "expected_loss": "Expected loss",
    "non_inferior": "Non-inferior",
    "significant": "Significant",
    "small": "Too small to test",
    "observed": "Users observed",
    "expected": "Users expected",
    "observed_share": "Observed share",
    "planned_share": "Planned share",
    "expected_share": "Expected share",
    "variance_reduction": "Variance reduction",
    "theta": "CUPED coefficient",
    "mde_abs": "Detectable difference per user",
    "mde_rel": "Detectable relative lift",
    "n_per_arm_needed": "Users needed per arm",
    "n_per_arm": "Users per arm",
    "segment": "Segment",
    # money and value
    "revenue": "Revenue",
    "monetary": "Money spent",
    "avg_order_value": "Average order value",
    "aov": "Average order value",
    "clv": "Predicted value",
    "value": "Value",
    # segments and RFM
    "recency": "Days since last order",
    "recency_days": "Days since last order",
    "frequency": "Orders",
    "rfm_segment": "RFM segment",
    "share": "Share",
    "base_share": "Share of the base",
    "segment_share": "Share of the segment",
    "index": "Index (100 = base)",
    "lookalikes_index": "Index (lookalikes, 100 = base)",
    "abs_change": "Change",
    "rel_change": "Relative change",
    # funnels and journeys
    "step": "Step",
    "event": "Event",
    "event_name": "Event",
    "from_event": "From",
    "to_event": "To",
    "after_step": "After step",
    "conversion": "Conversion",
    "conversion_rate": "Conversion rate",
    "step_conversion": "Step conversion",
    "overall_conversion": "Conversion from the start",
    "dropoff": "Drop-off",
    "drop_off": "Drop-off",
    "median_hours": "Median time (hours)",
    "median_days": "Median time (days)",
    "probability": "Probability",
    "paths": "Paths",
    "path": "Path",
    "rate": "Rate",
    "rank": "Rank",
    "feature": "Feature",
    "importance": "Importance",
    "conversion_from_previous": "Conversion from the previous step",
    "conversion_from_start": "Conversion from the first step",
    "median_seconds_to_convert": "Median time to convert (seconds)",
    "rest_conversion": "Conversion of the rest",
    "small_group": "Too small to test",
    "group": "Group",
    "device": "Device",
    "country": "Country",
    "previous_period": "Previous period",
    "current_period": "Current period",
    "previous_rate": "Previous rate",
    "current_rate": "Current rate",
    "audience": "Audience (users)",
    "expected_conversion": "Expected conversion",
    "expected_conversions": "Expected conversions",
    "expected_revenue": "Expected revenue",
    "total_cost": "Total cost",
    "net_value": "Net value",
    "roi": "Return on cost (×)",
    "level": "Level",
    "journeys": "Journeys",
    "user_share": "Share of users",
    "share_of_users": "Share of users",
    "repeating_journeys": "Journeys repeating it",
    "mean_visits": "Mean visits per journey",
    "share_repeating": "Share repeating",
    "source": "From",
    "target": "To",
    "next_step": "Next step",
    "longer": "Continues after",
    "conforming": "Conforming journeys",
    "rest_rate": "Rate of the rest",
    "customers": "Customers",
    "customer_share": "Share of customers",
    "revenue_share": "Share of revenue",
    "purchases": "Purchases",
    "action": "Suggested action",
    "state": "State",
    "period_end": "Month end",
    "min_ts": "First timestamp",
    "max_ts": "Last timestamp",
    "columns": "Columns",
    "users_with_orders": "Users with orders",
    "gross_revenue": "Gross revenue",
    "average_order_value": "Average order value",
    "revenue_per_customer": "Revenue per customer",
    "orders_per_customer": "Orders per customer",
    "refunds": "Refunds",
    "refund_revenue": "Refunded revenue",
    "experiment_id": "Experiment",
    "first_assigned": "First assigned",
    "last_assigned": "Last assigned",
    "severity": "Severity",
    "message": "Message",
    "planned": "Planned",
    "expected_users": "Users expected",
    "srm_p_value": "p-value (sample ratio)",
    "n_control": "Users in the control",
    "target_relative_lift": "Lift to detect",
    "power": "Power",
    "user_id": "User",
    "score": "Score",
    "decile": "Score decile",
    "table": "Table",
    "column": "Column",
    "problem": "Problem",
    "fix": "Fix",
    # campaigns and messages
    "campaign_id": "Campaign",
    "channel": "Channel",
    "sent": "Sent",
    "opened": "Opened",
    "machine_opened": "Machine opens",
    "human_opened": "Opened by a person",
    "clicked": "Clicked",
    "clicked_opened": "Clicked after opening",
    "conversions": "Conversions",
    "open_rate": "Open rate",
    "human_open_rate": "Open rate (people)",
    "click_rate": "Click rate",
    "click_to_open": "Click-to-open",
    "revenue_per_1000": "Revenue per 1,000 sent",
    "previous_week": "Previous week",
    "current_week": "Current week",
    "best_hour": "Best send hour",
    "odds_ratio": "Odds ratio",
    "group_rate": "Rate of the group",
    "best_rate": "Rate at the best hour",
    "adjusted_rate": "Adjusted rate",
    "successes": "Responses",
    "optouts": "Opt-outs",
    "optout_rate": "Opt-out rate",
    "control_variant": "Control arm",
    "treated_users": "Recipients",
    "control_users": "Control users",
    "treated_rate": "Conversion, recipients",
    "control_rate": "Conversion, control",
    "incremental_per_1000": "Added conversions per 1,000",
    "incremental_conversions": "Added conversions",
    "attributed_conversions": "Attributed conversions",
    "fatigued": "Fatigued users",
}

#: rates, shares and probabilities (in [0, 1]) wherever the name occurs
PERCENT: frozenset[str] = frozenset(
    {
        "chance_to_beat_control",
        "observed_share",
        "planned_share",
        "expected_share",
        "base_share",
        "segment_share",
        "share",
        "conversion_rate",
        "conversion_from_previous",
        "conversion_from_start",
        "rest_conversion",
        "previous_rate",
        "current_rate",
        "customer_share",
        "revenue_share",
        "share_of_users",
        "user_share",
        "share_repeating",
        "step_conversion",
        "overall_conversion",
        "variance_reduction",
        "open_rate",
        "human_open_rate",
        "click_rate",
        "click_to_open",
        "optout_rate",
        "treated_rate",
        "control_rate",
    }
)

#: relative lifts and changes (shown with a sign)
SIGNED_PERCENT: frozenset[str] = frozenset(
    {"rel_lift", "rel_ci_low", "rel_ci_high", "mde_rel", "rel_change"}
)


def label(name: object, labels: dict[str, str] | None = None) -> str:
    """The reader's label of a column: ``labels``, then :data:`LABELS`, else the name in words.

    Parameters
    ----------
    name
        A column name.
    labels
        Overrides of this one table (``{"mean": "Conversion rate"}``).

    Returns
    -------
    str
        ``"Chance to beat control"`` for ``chance_to_beat_control``; an unknown
        ``"after_step"`` becomes ``"After step"`` (underscores to spaces, first letter upper
        case), so a header never shows a code name.
    """
    key = str(name)
    if labels and key in labels:
        return labels[key]
    if key in LABELS:
        return LABELS[key]
    words = key.replace("_", " ").strip()
    return words[:1].upper() + words[1:] if words else key
