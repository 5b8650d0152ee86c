"""Plain-language findings and metrics of a lookalike expansion (safe Markdown via report.text).

- :func:`feature_label`: a feature column name as words ("attr:gender=male" -> "gender:
  male", "count:purchase" -> "purchase events", "category:sports" -> "share of sports").
- :func:`metrics_dict`: the report's interface in ``metrics.json`` — ``seeds`` ``{given,
  found, held_out}``, ``audience_size``, ``recall_at_n`` ``{default, centroid, random}``,
  ``lift_at`` ``{"1%", "5%", "10%"}`` and ``auc`` (the default model's), and
  ``top_profile_differences`` (``[{feature, label, seeds_index, lookalikes_index}]``);
  added: ``audit_at_audience_size`` ``{n, recall, random_recall, lift, random_measured}``
  (:meth:`~crm_helpers.lookalike.analysis.Expansion.audit_at_audience`; ``recall_at_n``
  uses the same ``n``). The notebook also records ``leakage_guard``
  (:meth:`~crm_helpers.lookalike.pipeline.LookalikeRun.leakage_guard`).
- :func:`overlap_metrics`: ``segment_overlap`` in ``metrics.json``: ``{"rfm" | "health":
  [{segment, population_share, seeds_share, seeds_index, lookalikes_share,
  lookalikes_index}]}`` (segmentations the data allow; see :mod:`crm_helpers.lookalike.overlap`).
- :func:`overlap_line`: the summary line on the segments the lookalikes over-represent.
- :func:`summary_lines`: the summary, expected quality first.
"""

from __future__ import annotations

import math

import pandas as pd

from crm_helpers.report.text import Safe, md

__all__ = [
    "feature_label",
    "leakage_line",
    "metrics_dict",
    "overlap_line",
    "overlap_metrics",
    "summary_lines",
]

_SHARE_WORDS = {
    "category": "share of {v} events",
    "platform": "share of events on {v}",
    "channel": "share of events via {v}",
    "hour": "share of events at {v}",
}
_PLAIN = {
    "events": "events",
    "active_days": "active days",
    "recency_days": "days since last event",
    "orders": "orders",
    "revenue": "revenue",
    "avg_order_value": "average order value",
    "order_recency_days": "days since last order",
    "messages_sent": "messages received",
    "open_rate": "message open rate",
    "click_rate": "message click rate",
    "tenure_days": "days since signup",
}


def feature_label(name: str) -> str:
    """Words for a feature column (plain text; escape it before putting it in Markdown)."""
    if name in _PLAIN:
        return _PLAIN[name]
    kind, _, rest = name.partition(":")
    if kind == "count":
        return f"{rest} events"
    if kind == "attr":
        col, _, v = rest.partition("=")
        return f"{col}: {v}"
    if kind in _SHARE_WORDS:
        return _SHARE_WORDS[kind].format(v=rest)
    return name


def _num(v) -> float | None:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


def metrics_dict(expansion, top: pd.DataFrame) -> dict:
    """The metrics the issue names, exactly (see the module docstring)."""
    d = expansion.audits["default"]
    return {
        "seeds": {
            "given": int(expansion.seeds.given),
            "found": int(expansion.seeds.found),
            "held_out": int(len(expansion.held_index)),
        },
        "audience_size": int(expansion.audience_size),
        "recall_at_n": {k: _num(v) for k, v in expansion.recall_at_n().items()},
        "lift_at": {k: _num(v) for k, v in d.lift_at.items()},
        "auc": _num(d.auc),
        "audit_at_audience_size": {k: _num(v) for k, v in expansion.audit_at_audience().items()},
        "top_profile_differences": [
            {
                "feature": r.feature,
                "label": feature_label(r.feature),
                "seeds_index": _num(r.seeds_index),
                "lookalikes_index": _num(r.lookalikes_index),
            }
            for r in top.itertuples()
        ],
    }


def overlap_metrics(table: pd.DataFrame) -> dict:
    """``{segmentation: [row, ...]}`` from :func:`~crm_helpers.lookalike.overlap.overlap_table`."""
    cols = [
        c
        for c in ("population_share", "seeds_share", "seeds_index", "lookalikes_share",
                  "lookalikes_index")
        if c in table.columns
    ]  # fmt: skip
    return {
        seg: [
            {"segment": str(r["segment"]), **{c: _num(r[c]) for c in cols}}
            for _, r in rows.iterrows()
        ]
        for seg, rows in table.groupby("segmentation", sort=False)
    }


def overlap_line(table: pd.DataFrame) -> Safe | None:
    """ "Existing segments the lookalikes fall in most: …": per segmentation, the segment with
    the highest lookalike index above 100 that holds at least 2% of the lookalikes (not the
    "no purchase" / "no activity" rest); None when no segment qualifies."""
    from crm_helpers.lookalike.overlap import NO_ACTIVITY, NO_PURCHASE, SEGMENTATIONS

    if not len(table) or "lookalikes_index" not in table.columns:
        return None
    parts = []
    for seg, rows in table.groupby("segmentation", sort=False):
        rows = rows[
            ~rows["segment"].isin([NO_PURCHASE, NO_ACTIVITY])
            & (rows["lookalikes_share"] >= 0.02)
            & (rows["lookalikes_index"] > 100)
        ]
        if not len(rows):
            continue
        r = rows.loc[rows["lookalikes_index"].idxmax()]
        parts.append(
            md(
                "{kind} **{s}** ({ls:.0%} of the lookalikes vs {ps:.1%} of everyone, {x})",
                kind=SEGMENTATIONS.get(seg, seg),
                s=r["segment"],
                ls=r["lookalikes_share"],
                ps=r["population_share"],
                x=_times(r["lookalikes_index"]),
            )
        )
    if not parts:
        return None
    return md("Existing segments the lookalikes fall in most: {p}.", p=Safe("; ".join(parts)))


def _times(index: float) -> str:
    return f"{index / 100:.1f}×"


def _traits(profile: pd.DataFrame, group: str) -> Safe:
    """Top 3 behaviour differences and top 2 over-represented attributes of ``group``."""
    from crm_helpers.lookalike.profile import top_differences

    col = f"{group}_index"
    is_attr = profile["feature"].str.startswith("attr:")
    behaviour = top_differences(profile[~is_attr], n=3, group=group)
    attrs = top_differences(profile[is_attr & (profile[col] > 100)], n=2, group=group)
    parts = [
        md("{f} {x} the population", f=feature_label(r.feature), x=_times(getattr(r, col)))
        for r in pd.concat([attrs, behaviour]).itertuples()
    ]
    return Safe("; ".join(parts)) if parts else Safe("no clear difference")


def summary_lines(run, profile: pd.DataFrame) -> list[Safe]:
    """The summary (safe Markdown lines): quality first, then who seeds and lookalikes are.

    "Y× random" is the held-out recall over the recall a random pick of the same size
    expects (its share of the candidates); the random baseline's measured recall is shown.

    Parameters
    ----------
    run : LookalikeRun
    profile : pandas.DataFrame
        :func:`~crm_helpers.lookalike.profile.profile_table` with seeds and lookalikes.
    """
    ex = run.expansion
    rec = ex.recall_at_n()
    n = ex.audience_size
    lines: list[Safe] = []
    if math.isnan(rec["default"]):
        lines.append(
            md(
                "The audience has **{n:,}** users. With {k} seed(s) no seed could be held out, "
                "so its quality is not measured.",
                n=n,
                k=ex.seeds.found,
            )
        )
    else:
        q = ex.audit_at_audience()
        lift = q["lift"]
        lines.append(
            md(
                "The audience of **{n:,}** users holds **{r:.0%}** of the held-out seeds: "
                "**{x}** as many hidden seeds as a random audience of the same size (which "
                "would hold {e:.0%}; the random baseline caught {rr:.0%}); the centroid "
                "baseline holds {c:.0%}.",
                n=int(q["n"]),
                r=q["recall"],
                e=q["random_recall"],
                rr=rec["random"],
                c=rec["centroid"],
                x=f"{lift:.1f} times" if math.isfinite(lift) else "far more",
            )
        )
    lines.append(
        md(
            "Seeds: {g:,} given by {rule}, {f:,} found among the {p:,} users of the population"
            "{miss}; {h:,} held out to audit the model ({model}).",
            g=ex.seeds.given,
            rule=run.seed_rule,
            f=ex.seeds.found,
            p=run.population_size,
            miss=md(" (**{m:,} not found**)", m=len(ex.seeds.missing))
            if len(ex.seeds.missing)
            else Safe(""),
            h=len(ex.held_index),
            model=ex.model_name,
        )
    )
    if run.excluded_events or run.dropped_features:
        lines.append(leakage_line(run))
    lines.append(md("Who the seeds are: {t}.", t=_traits(profile, "seeds")))
    lines.append(md("Who the lookalikes are: {t}.", t=_traits(profile, "lookalikes")))
    lines += [md("Note: {n}.", n=note) for note in ex.notes]
    return lines


def leakage_line(run) -> Safe:
    """What no feature saw because it defines the seed (the leakage rule, plain words)."""
    parts = []
    if run.excluded_events:
        parts.append(md("the {e} events", e=", ".join(repr(e) for e in run.excluded_events)))
    if "orders" in run.dropped_features:
        parts.append(Safe("the orders (order count, revenue, order value, last order)"))
    return md(
        "No feature sees what defines the seed ({rule}): {p} are left out of every feature "
        "(totals, counts, recency, active days, shares){how}, so the held-out seeds are "
        "found by what else they do.",
        rule=run.seed_rule,
        p=Safe(" and ".join(parts)),
        how=md("; {h}", h=run.seed_event_how) if run.seed_event_how else Safe(""),
    )
