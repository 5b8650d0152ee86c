"""Notebook glue for the campaign report: derived defaults, metrics.json records, findings.

:func:`choose_timezone` and :func:`choose_holdout` derive the parameters left empty;
:func:`campaign_records`, :func:`by_hour_records`, :func:`incremental_records` and
:func:`fatigue_record` build the ``metrics.json`` keys ``campaigns``, ``by_hour``,
``incremental`` and ``fatigue`` (names fixed by the interface); :func:`attribution_rule`
states the crediting rule in one line; :func:`campaign_summary` writes the manager's
findings. Every number in a sentence is read from the tables passed in, and every name
from the data (campaign ids, channels, variants) is escaped
(:func:`crm_helpers.report.text.md`), so the sentences are safe Markdown.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from crm_helpers.campaigns.analysis import rates_table
from crm_helpers.campaigns.core import COUNT_COLUMNS
from crm_helpers.engine import is_utc
from crm_helpers.report.hints import pass_param
from crm_helpers.report.text import code, join, md

__all__ = [
    "attribution_rule",
    "by_hour_records",
    "campaign_records",
    "campaign_summary",
    "cell_windows_note",
    "choose_holdout",
    "choose_hour_metric",
    "choose_optout",
    "choose_timezone",
    "holdout_hint",
    "fatigue_record",
    "hour_rates",
    "incremental_records",
    "message_test_lines",
    "named_test_note",
]


def _v(x: Any) -> Any:
    """A JSON-friendly scalar: NaN/NA -> None, numpy -> Python."""
    if x is None or x is pd.NA:
        return None
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def _id(x: Any) -> Any:
    x = _v(x)
    return x if isinstance(x, int | str) or x is None else str(x)


def choose_timezone(data: Any) -> tuple[str, str]:
    """The data's time zone (``schema.yaml``'s ``timezone``) or UTC, and how it was found."""
    tz = getattr(getattr(data, "schema", None), "timezone", None)
    if tz and not is_utc(str(tz)):
        return str(tz), "the time zone of the data (timezone in schema.yaml)"
    return "UTC", "the data's timestamps are UTC (schema.yaml names no other time zone)"


def choose_hour_metric(responses: Any) -> tuple[str, str]:
    """The response the send-time and frequency sections read, and why: clicks when the log
    records them, else opens, else conversions (``responses``: ``core.responses_of``)."""
    if responses.clicks:
        return "click_rate", "the log records clicks"
    if responses.opens:
        return "open_rate", "the log records opens but no clicks"
    return "conversion_rate", "the log records no opens and no clicks"


def choose_optout(data: Any) -> tuple[str | None, str]:
    """The data's opt-out event and how it was found, or ``(None, why)``.

    The ``unsubscribe`` stage of the shared vocabulary
    (:data:`crm_helpers.events.OTHER_STAGES`: ``unsubscribe``, ``opt_out``, ``optout``,
    ``email_unsubscribe``, ...; spam complaints are not opt-outs) looked up among the
    events' names with :func:`crm_helpers.events.stage_event` (exact name first, then
    ignoring case, in the stage's order). None without an events table or such an event.
    """
    from crm_helpers import events as ev

    if not data.has("events", "user_id", "event", "ts"):
        return None, "the data have no events table"
    name = ev.stage_event("unsubscribe", ev.known_events(data.events))
    if name is None:
        return None, "no opt-out event (unsubscribe, opt_out, ...) among the events"
    return name, (
        "the first name of the shared opt-out vocabulary (unsubscribe, unsubscribed, opt_out, "
        "optout, email_unsubscribe, ...) found among the events"
    )


def choose_holdout(candidates: pd.DataFrame) -> tuple[str, str, str] | None:
    """``(experiment, control, how)`` when exactly one experiment and one control qualify
    (:func:`crm_helpers.campaigns.holdout.holdout_candidates`), else None."""
    pairs = candidates[["experiment_id", "control_variant"]].drop_duplicates()
    if len(pairs) != 1:
        return None
    exp, ctl = pairs.iloc[0]
    camps = candidates["campaign_id"].tolist()
    how = (
        f"the only experiment whose arms split exactly into recipients and non-recipients "
        f"of campaign {', '.join(map(str, camps))}"
    )
    return str(exp), str(ctl), how


def holdout_hint(candidates: pd.DataFrame | None, measured: bool = False) -> str:
    """What to pass when no holdout was derived: the first candidate experiment and its
    control arm from the data as the parameters holdout_experiment and control_variant
    (several qualify), or only what to add when none qualifies (safe Markdown).
    ``measured``: the report measures every candidate (none named) and says so."""
    if candidates is None or not len(candidates):
        return (
            "Add an experiment to assignments.parquet whose control arm got no message of a "
            "campaign that every user of the other arms got."
        )
    first = candidates.sort_values(
        ["experiment_id", "control_variant"], key=lambda s: s.astype(str)
    )
    exp, ctl = first.iloc[0][["experiment_id", "control_variant"]]
    n = len(candidates[["experiment_id", "control_variant"]].drop_duplicates())
    how = (
        "{n} experiments and arms qualify and none is named: each is measured below; to show "
        "one, {cmd}."
        if measured
        else "{n} experiments and arms qualify; choose one, e.g. {cmd}."
    )
    return md(
        how,
        n=n,
        cmd=join(
            [
                pass_param("holdout_experiment", str(exp), prefix="pass "),
                pass_param("control_variant", str(ctl), prefix=""),
            ],
            " ",
        ),
    )


def attribution_rule(attribution_days: float, source: str, event: str | None) -> str:
    """The crediting rule in one line (safe Markdown)."""
    what = "An order" if source == "orders" else md("A {e} event", e=code(event))
    return md(
        "{what} counts as a conversion of a message when it comes after the send and at most "
        "{d:g} days later; each conversion is credited to one message only, the last one sent "
        "to that user before it (last touch).",
        what=what,
        d=float(attribution_days),
    )


def campaign_records(scorecard: pd.DataFrame) -> list[dict[str, Any]]:
    """``metrics.json`` ``campaigns``: one dict per campaign and channel (the interface's
    fields, then ``conversions, revenue_per_1000, click_to_open`` and each rate's Wilson
    interval ``<rate>_ci_low, <rate>_ci_high``)."""
    keys = ("sent", "opened", "clicked", "converted", "open_rate", "click_rate",
            "conversion_rate", "revenue", "click_to_open")  # fmt: skip
    out = []
    for _, r in scorecard.iterrows():
        rec = {"campaign_id": _id(r["campaign_id"]), "channel": _id(r["channel"])}
        rec.update({k: _v(r[k]) for k in keys})
        rec.update({k: _v(r[k]) for k in ("conversions", "revenue_per_1000") if k in r})
        for rate in ("open_rate", "click_rate", "click_to_open", "conversion_rate"):
            if f"{rate}_ci_low" in r:
                rec[f"{rate}_ci_low"] = _v(r[f"{rate}_ci_low"])
                rec[f"{rate}_ci_high"] = _v(r[f"{rate}_ci_high"])
        out.append(rec)
    return out


def hour_rates(hour_counts: pd.DataFrame, by: str = "channel") -> pd.DataFrame:
    """Counts and rates per ``by`` and send hour (weekdays pooled), from ``core.hour_counts``."""
    cols = [c for c in COUNT_COLUMNS if c in hour_counts.columns]
    num = hour_counts[[by, "hour"]].join(hour_counts[cols].apply(pd.to_numeric, errors="coerce"))
    g = num.groupby([by, "hour"], sort=True)[cols].sum(min_count=1).reset_index()
    return rates_table(g)


def by_hour_records(rates: pd.DataFrame, by: str = "channel") -> dict[str, list[dict]]:
    """``metrics.json`` ``by_hour``: per channel, per send hour ``hour, sent, opened`` (human
    opens), ``clicked, click_rate, ci_low, ci_high`` (the click rate's Wilson interval)."""
    out: dict[str, list[dict]] = {}
    for group, g in rates.groupby(by, sort=True):
        out[str(group)] = [
            {"hour": int(r["hour"]), "sent": _v(r["sent"]), "opened": _v(r["human_opened"]),
             "clicked": _v(r["clicked"]), "click_rate": _v(r["click_rate"]),
             "ci_low": _v(r["click_rate_ci_low"]), "ci_high": _v(r["click_rate_ci_high"])}
            for _, r in g.iterrows()
        ]  # fmt: skip
    return out


def incremental_records(table: pd.DataFrame | None) -> list[dict[str, Any]]:
    """``metrics.json`` ``incremental``: one dict per holdout campaign (``[]`` for None),
    the fields of :data:`~crm_helpers.campaigns.holdout.INCREMENTAL_FIELDS` first."""
    if table is None:
        return []
    return [{k: (_id(v) if k in ("campaign_id", "control_variant") else _v(v))
             for k, v in r.items()} for r in table.to_dict("records")]  # fmt: skip


def fatigue_record(freq: pd.DataFrame, metric: str, cap: int | None, fit=None) -> dict[str, Any]:
    """``metrics.json`` ``fatigue``: ``by_count`` (``count, sent, click_rate`` and the rate
    of the metric used), ``cap``, the metric and the fitted decay (with ``decay_variance``:
    which interval, ``"model"`` or ``"cluster-robust by <column>"``, and ``log_decay_se``)."""
    by_count = []
    for _, r in freq.iterrows():
        rec = {"count": int(r["count"]), "sent": int(r["sent"])}
        rec["click_rate"] = _v(r["rate"]) if metric == "click_rate" else None
        rec.update(rate=_v(r["rate"]), ci_low=_v(r["ci_low"]), ci_high=_v(r["ci_high"]))
        if "optout_rate" in freq.columns:
            rec.update(optouts=_v(r["optouts"]), optout_rate=_v(r["optout_rate"]))
        by_count.append(rec)
    out: dict[str, Any] = {"by_count": by_count, "cap": cap, "metric": metric}
    if fit is not None:
        out.update(base=fit.base, decay=fit.decay, decay_ci_low=fit.decay_ci_low,
                   decay_ci_high=fit.decay_ci_high, decay_p_value=fit.p_value,
                   decay_variance=fit.variance, log_decay_se=fit.log_decay_se)  # fmt: skip
    return out


def cell_windows_note(windows: pd.DataFrame) -> str:
    """One line under the channel x segment send windows: how many cells have a window.

    ``windows``: :func:`crm_helpers.campaigns.analysis.send_windows` by
    ``["channel", "segment"]``.
    """
    n = len(windows)
    found = int(windows["best_hour"].notna().sum()) if n else 0
    if not n:
        return "No channel and segment had sends to compare."
    if not found:
        return md(
            "In none of the {n} channel and segment cells is a send hour significantly better "
            "than the cell's other hours: the data cannot tell the hours apart there.",
            n=n,
        )
    return md(
        "{k} of {n} channel and segment cells have a send hour significantly better than the "
        "cell's other hours (listed, best first; Benjamini-Hochberg across all hours of all "
        "cells); in the cells marked *cannot tell* the data cannot tell the hours apart.",
        k=found,
        n=n,
    )


def named_test_note(arms: pd.DataFrame) -> str:
    """The caveat beside tests named by ``message_test_campaigns``
    (:func:`crm_helpers.campaigns.named_tests.named_message_tests`): which campaigns were
    read as arms, which is the baseline, and that the audiences were not assigned at random
    (with the number of users who got more than one arm)."""
    parts = []
    for name, g in arms.groupby("experiment_id", sort=False):
        ids = [code(v) for v in g["variant"]]
        parts.append(
            md("{t}: {first} (baseline), {rest}", t=code(name), first=ids[0], rest=join(ids[1:]))
        )
    overlap = int(arms.groupby("experiment_id")["shared_users"].first().sum()) if len(arms) else 0
    return md(
        "Read as message tests, as named in message_test_campaigns: {p}. Each campaign is an "
        "arm and each message a unit. These campaigns were not assigned by an experiment: a "
        "difference can come from their audiences and send times as well as from the "
        "message{o}.",
        p=join(parts, "; "),
        o=md(" ({n:,} recipients got more than one arm)", n=overlap) if overlap else "",
    )


def message_test_lines(variants: pd.DataFrame, alpha: float = 0.05) -> list[str]:
    """Findings of the message tests (``holdout.message_test_table``): per test, each arm
    whose click or conversion rate differs from the baseline's (Holm-adjusted p below
    ``alpha``), else one line saying no arm differs."""
    lines: list[str] = []
    for exp, t in variants.groupby("experiment_id", sort=True):
        base = t[t["baseline"]].iloc[0]
        found = []
        for rate in ("click_rate", "conversion_rate"):
            p = pd.to_numeric(t[f"{rate}_p_holm"], errors="coerce")
            for _, r in t[(p < alpha).to_numpy()].iterrows():
                found.append(
                    md(
                        "{v} {what} {r} vs {b} for {bv} ({d:+.2f} pp [{lo:+.2f}, {hi:+.2f}], "
                        "Holm p {p})",
                        v=code(r["variant"]),
                        what=rate.replace("_", " "),
                        r=_pct(float(r[rate]), 2),
                        b=_pct(float(base[rate]), 2),
                        bv=code(base["variant"]),
                        d=100 * r[f"{rate}_diff"],
                        lo=100 * r[f"{rate}_ci_low"],
                        hi=100 * r[f"{rate}_ci_high"],
                        p="< 0.001"
                        if r[f"{rate}_p_holm"] < 0.001
                        else f"{r[f'{rate}_p_holm']:.3f}",
                    )  # fmt: skip
                )
        if found:
            lines.append(md("Message test {e}: {f}.", e=code(exp), f=join(found, "; ")))
        else:
            lines.append(
                md(
                    "Message test {e}: no arm differs significantly from {b} in click or "
                    "conversion rate.",
                    e=code(exp),
                    b=code(base["variant"]),
                )
            )
    return lines


def _pct(x: float, digits: int = 1) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{100 * x:.{digits}f}%"


def campaign_summary(
    channels: pd.DataFrame,
    scorecard: pd.DataFrame,
    *,
    incremental: pd.DataFrame | None = None,
    windows: pd.DataFrame | None = None,
    hour_metric: str = "click_rate",
    fit=None,
    cap: int | None = None,
    fatigue_window_days: float = 7.0,
    fatigue_metric: str = "click_rate",
    min_sends: int = 1000,
    message_tests: pd.DataFrame | None = None,
) -> list[str]:
    """The report's findings, most important first (safe Markdown lines).

    The first line is the index page's headline: messages sent, the best channel by
    conversions per message (or clicks, opens) and the holdout's incremental effect when
    there is one. ``message_tests``: ``holdout.message_test_table`` (one line per test,
    :func:`message_test_lines`).
    """
    lines: list[str] = []
    sent = int(channels["sent"].sum())
    rate = next(
        (r for r in ("conversion_rate", "click_rate", "open_rate")
         if pd.to_numeric(channels[r], errors="coerce").notna().any()),
        None,
    )  # fmt: skip
    head = md("**{n:,} messages** in {c:,} campaigns", n=sent, c=len(scorecard))
    if rate is not None and len(channels):
        best = channels.loc[pd.to_numeric(channels[rate], errors="coerce").idxmax()]
        head = md(
            "{head}; the best channel by {what} is {ch} ({r} of messages sent).",
            head=head, what=rate.replace("_", " "), ch=code(best["channel"]),
            r=_pct(float(best[rate]), 2),
        )  # fmt: skip
    else:
        head = md("{head}; the log records no response.", head=head)
    lines.append(head)
    if incremental is not None and len(incremental):
        for _, r in incremental.iterrows():
            att = r.get("attributed_conversions")
            lines.append(
                md(
                    "Campaign {c} against its holdout ({v}): attributed {a} conversions; "
                    "incremental {i:,.0f} [{lo:,.0f}, {hi:,.0f}] ({p:+.1f} per 1,000 recipients).",
                    c=code(r["campaign_id"]),
                    v=code(r["control_variant"]),
                    a="n/a" if att is None or pd.isna(att) else f"{int(att):,}",
                    i=r["incremental_conversions"],
                    lo=r["conversions_ci_low"],
                    hi=r["conversions_ci_high"],
                    p=r["incremental_per_1000"],
                )  # fmt: skip
            )
    if message_tests is not None and len(message_tests):
        lines.extend(message_test_lines(message_tests))
    big = scorecard[pd.to_numeric(scorecard["sent"]) >= min_sends]
    if rate is not None and len(big) > 1:
        top = big.loc[pd.to_numeric(big[rate], errors="coerce").idxmax()]
        lines.append(
            md(
                "Best campaign by {what} (of those with {m:,}+ sends): {c} on {ch}, {r}.",
                what=rate.replace("_", " "),
                m=min_sends,
                c=code(top["campaign_id"]),
                ch=code(top["channel"]),
                r=_pct(float(top[rate]), 2),
            )  # fmt: skip
        )
    if windows is not None and len(windows):
        found = windows[windows["best_hour"].notna()]
        what = hour_metric.replace("_", " ")
        for _, w in found.iterrows():
            lines.append(
                md(
                    "Send {ch} at {h:02d}:00: {what} {r} on the channel's mix of campaigns vs "
                    "{avg} on average (odds x{o:.2f} within campaigns).",
                    ch=code(w["channel"]),
                    h=int(w["best_hour"]),
                    what=what,
                    r=_pct(w["adjusted_rate"]),
                    avg=_pct(w["group_rate"]),
                    o=float(w["odds_ratio"]),
                )
            )
        rest = windows[windows["best_hour"].isna()]["channel"].tolist()
        if rest:
            lines.append(
                md(
                    "For {chs} the data cannot tell the send hours apart (no hour differs "
                    "significantly in {what}).",
                    chs=join([code(c) for c in rest]),
                    what=what,
                )  # fmt: skip
            )
    if fit is not None:
        change = md(
            "Each message received in the previous {d:g} days multiplies the {what} by "
            "{k:.2f} [{lo:.2f}, {hi:.2f}]",
            d=float(fatigue_window_days), what=fatigue_metric.replace("_", " "),
            k=fit.decay, lo=fit.decay_ci_low, hi=fit.decay_ci_high,
        )  # fmt: skip
        if cap is not None:
            lines.append(md("{c}: cap at {n} messages per {d:g} days.", c=change, n=cap,
                            d=float(fatigue_window_days)))  # fmt: skip
        elif fit.significant:
            lines.append(md("{c}; no cap is needed within the frequencies observed.", c=change))
        else:
            lines.append(md("{c}: no fatigue measurable.", c=change))
    return lines
