"""What moved since the previous run: each report's headline numbers, then and now.

Semantics
---------
* **Headline numbers** (1–3 per report, :data:`HEADLINES`) are read from a report's
  ``metrics.json`` as recorded, never recomputed: the numbers its summary leads with. A
  number the run did not record (a section that stepped aside) is left out.
* **The change** compares the two newest good runs of the report's history
  (:mod:`crm_helpers.report.history`): ``conversion 7.8% → 7.1%, −0.7 pt``. Rates change
  in percentage points, counts and amounts by their difference and its share of the old
  value, text (an experiment's verdict) by the two words.
* **Marked beyond noise** (:data:`RULE`): when both runs recorded a 95% interval for the
  number, each interval's half-width gives its standard error (``se = (high − low) /
  (2·1.96)``) and the change is marked when ``|Δ| > 1.96·√(se₁² + se₂²)``, the two-sided 5%
  test of a difference of two independent estimates. Numbers without a recorded interval
  (counts of a census, model scores) are shown and never marked.
* **Changed parameters**: when the two runs' parameters differ their names are listed,
  since the change may come from them; those derived from the data apart.
* Every string that reaches HTML is escaped (:func:`html.escape`).
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = [
    "HEADLINES",
    "RULE",
    "Z",
    "Change",
    "Headline",
    "changed_parameters",
    "compare",
    "changes_html",
    "format_change",
    "headlines",
]

#: The normal quantile of a two-sided 95% interval.
Z = 1.96

#: The marking rule, as the index states it.
RULE = (
    "▲▼ marks a change beyond run-to-run noise: |Δ| > 1.96·√(se₁² + se₂²), each se the half-"
    "width of that run's 95% interval ÷ 1.96; numbers without an interval are not marked."
)

MINUS = "−"


@dataclass(frozen=True)
class Headline:
    """One headline number of one run.

    ``kind``: ``"rate"`` (a share, 0.078), ``"points"`` (a difference of two shares, shown
    in percentage points), ``"count"``, ``"amount"`` (money, a mean),
    ``"ratio"`` (a multiple, 6.2×), ``"text"``. ``ci_low``/``ci_high``: its 95% interval, if
    the run recorded one.
    """

    key: str
    label: str
    kind: str
    value: Any
    ci_low: float | None = None
    ci_high: float | None = None

    @property
    def se(self) -> float | None:
        """The standard error implied by the interval, or None."""
        if _num(self.ci_low) is None or _num(self.ci_high) is None:
            return None
        return abs(float(self.ci_high) - float(self.ci_low)) / (2 * Z)


@dataclass(frozen=True)
class Change:
    """One headline number then and now; ``significant`` is None when not testable."""

    label: str
    kind: str
    before: Any
    after: Any
    delta: float | None
    threshold: float | None
    significant: bool | None


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    return float(v) if math.isfinite(v) else None


def _get(d: Any, *path: str | int) -> Any:
    for p in path:
        try:
            d = d[p]
        except (KeyError, IndexError, TypeError):
            return None
    return d


# --- the headline numbers of each report ---------------------------------------------------


def _data_overview(m: dict) -> list[Headline]:
    return [
        Headline("users", "users", "count", m.get("rows.users")),
        Headline("orders", "orders", "count", m.get("orders.orders")),
        Headline("revenue", "revenue", "amount", m.get("orders.revenue")),
    ]


def _funnel(m: dict) -> list[Headline]:
    last = _get(m, "steps", -1) or {}
    return [
        Headline(
            "conversion",
            "conversion",
            "rate",
            m.get("overall_conversion"),
            last.get("ci_low"),
            last.get("ci_high"),
        ),
        Headline("entered", "users entering", "count", m.get("entered")),
        Headline("aov", "average order value", "amount", m.get("average_order_value")),
    ]


def _campaigns(m: dict) -> list[Headline]:
    campaigns = m.get("campaigns")
    n = len(campaigns) if isinstance(campaigns, list) else None
    return [
        Headline("sent", "messages sent", "count", m.get("sent")),
        Headline("campaigns", "campaigns", "count", n),
    ]


def _rate_metric(metric: str) -> bool:
    """A share of users: the binary metrics of :func:`crm_helpers.experiments.parse_metric`
    (``conversion``, ``event:<name>``); not imported, the analyses sit above this package."""
    return metric == "conversion" or metric.startswith("event:")


def _experiment(m: dict) -> list[Headline]:
    out = [Headline("verdict", "verdict", "text", _get(m, "verdict", "decision"))]
    arms = [a for a in (m.get("arms") or []) if isinstance(a, dict)]
    if not arms:
        return out
    primary = arms[0].get("metric")
    rows = [a for a in arms if a.get("metric") == primary and _num(a.get("diff")) is not None]
    chosen = _get(m, "verdict", "variant")
    row = next((a for a in rows if a.get("variant") == chosen), None)
    if row is None and rows:  # no arm chosen: the one most likely to beat control
        row = max(rows, key=lambda a: _num(a.get("chance_to_beat_control")) or 0.0)
    control = next((a.get("variant") for a in arms if a.get("diff") is None), "control")
    if row is not None:
        kind = "points" if _rate_metric(str(primary)) else "amount"
        out.append(
            Headline(
                f"diff:{row['variant']}:{primary}",
                f"{primary}, {row['variant']} − {control}",
                kind,
                row.get("diff"),
                row.get("diff_ci_low"),
                row.get("diff_ci_high"),
            )
        )
    return out


def _journeys(m: dict) -> list[Headline]:
    pb = m.get("paths_between") or {}
    label = f"journeys from {pb.get('start')} reaching {pb.get('end')}"
    return [
        Headline(
            f"reach:{pb.get('start')}:{pb.get('end')}", label, "rate", pb.get("share_reaching_end")
        ),
        Headline(
            "conformance",
            "journeys conforming to the stage order",
            "rate",
            m.get("conformance_rate"),
        ),
    ]


def _lookalike(m: dict) -> list[Headline]:
    return [
        Headline("audience", "audience size", "count", m.get("audience_size")),
        Headline(
            "recall",
            "held-out seeds in the audience",
            "rate",
            _get(m, "audit_at_audience_size", "recall"),
        ),
        Headline(
            "lift",
            "lift over a random audience",
            "ratio",
            _get(m, "audit_at_audience_size", "lift"),
        ),
    ]


def _segments(m: dict) -> list[Headline]:
    return [
        Headline("customers", "customers", "count", m.get("customers")),
        Headline("churned", "churned users", "count", _get(m, "states", "churned")),
        Headline("clv", "mean predicted customer value", "amount", _get(m, "clv", "mean")),
    ]


#: Each notebook's headline numbers, from its ``metrics.json``'s ``metrics``.
HEADLINES: dict[str, Callable[[dict], list[Headline]]] = {
    "campaign_performance": _campaigns,
    "data_overview": _data_overview,
    "experiment_readout": _experiment,
    "funnel_dropoff": _funnel,
    "journey_mapping": _journeys,
    "lookalike_expansion": _lookalike,
    "segment_profiling": _segments,
}


def headlines(notebook: str, metrics_doc: dict | None) -> list[Headline]:
    """The headline numbers of one run of ``notebook`` (those it recorded; [] if unknown)."""
    pick = HEADLINES.get(notebook)
    m = (metrics_doc or {}).get("metrics")
    if pick is None or not isinstance(m, dict):
        return []
    out = []
    for h in pick(m):
        ok = isinstance(h.value, str) if h.kind == "text" else _num(h.value) is not None
        if ok:
            out.append(h)
    return out


# --- comparing two runs -------------------------------------------------------------------


def compare(before: list[Headline], after: list[Headline]) -> list[Change]:
    """The change of each headline number present in both runs, in ``after``'s order."""
    old = {h.key: h for h in before}
    out = []
    for h in after:
        b = old.get(h.key)
        if b is None or b.kind != h.kind:
            continue
        if h.kind == "text":
            out.append(Change(h.label, h.kind, b.value, h.value, None, None, None))
            continue
        delta = float(h.value) - float(b.value)
        threshold = significant = None
        if b.se is not None and h.se is not None:
            threshold = Z * math.sqrt(b.se**2 + h.se**2)
            significant = abs(delta) > threshold
        out.append(Change(h.label, h.kind, b.value, h.value, delta, threshold, significant))
    return out


def changed_parameters(before_doc: dict | None, after_doc: dict | None) -> tuple[list, list]:
    """Names of the parameters whose values differ between two runs: ``(set, derived)``.

    ``set`` are those given (or left at a default); ``derived`` those derived from the data
    (the provenance's ``derived``), which may follow the data (``data_end``) or change what
    is measured (a funnel's ``steps``).
    """
    prov_a = (before_doc or {}).get("provenance") or {}
    prov_b = (after_doc or {}).get("provenance") or {}
    pa, pb = prov_a.get("parameters") or {}, prov_b.get("parameters") or {}
    derived = set(prov_a.get("derived") or {}) | set(prov_b.get("derived") or {})
    differ = sorted(k for k in set(pa) | set(pb) if pa.get(k) != pb.get(k))
    return [k for k in differ if k not in derived], [k for k in differ if k in derived]


def _value(v: Any, kind: str, decimals: int) -> str:
    if kind == "rate":
        return f"{100 * v:.{decimals}f}%".replace("-", MINUS)
    if kind == "points":
        return f"{100 * v:+.{decimals}f} pt".replace("-", MINUS)
    if kind == "count":
        return f"{v:,.0f}".replace("-", MINUS)
    if kind == "ratio":
        return f"{v:.2f}×".replace("-", MINUS)
    return f"{v:,.2f}".replace("-", MINUS)


def _signed(d: float, text: str) -> str:
    return (MINUS if d < 0 else "+") + text


def format_change(c: Change) -> str:
    """``"conversion 7.8% → 7.1%, −0.7 pt"`` (plain text; escape it for HTML).

    Rates use one decimal of a percent (two below 1%), more when the change would show as
    zero; a change too small for the shown precision says so.
    """
    if c.kind == "text":
        if c.before == c.after:
            return f"{c.label} {c.after}, unchanged"
        return f"{c.label} {c.before} → {c.after}"
    b, a, d = float(c.before), float(c.after), float(c.delta or 0.0)
    share = c.kind in ("rate", "points")
    decimals = 2 if share and max(abs(a), abs(b)) < 0.01 else 1
    while share and decimals < 3 and d and f"{100 * abs(d):.{decimals}f}".strip("0.") == "":
        decimals += 1
    shown_b, shown_a = _value(b, c.kind, decimals), _value(a, c.kind, decimals)
    if d == 0:
        return f"{c.label} {shown_a}, unchanged"
    if shown_b == shown_a:
        return f"{c.label} {shown_a}, unchanged at this precision"
    head = f"{c.label} {shown_b} → {shown_a}, "
    if share:
        return head + _signed(d, f"{100 * abs(d):.{decimals}f} pt")
    kind = "amount" if c.kind == "ratio" else c.kind  # a change of a multiple has no ×
    rel = f" ({_signed(d, f'{100 * abs(d) / abs(b):.1f}%')})" if b else ""
    return head + _signed(d, _value(abs(d), kind, decimals)) + rel


def changes_html(notebook: str, runs: list[Any]) -> str:
    """The "since the previous run" block of a card ("" with fewer than two runs).

    Parameters
    ----------
    notebook
        The report's notebook name (which headline numbers).
    runs
        The report's history entries, oldest first; the last two are compared
        (:func:`crm_helpers.report.history.last`).
    """
    if len(runs) < 2:
        return ""
    prev, cur = runs[-2], runs[-1]
    changes = compare(headlines(notebook, prev.metrics), headlines(notebook, cur.metrics))
    if not changes:
        return ""
    items = []
    for c in changes:
        mark = ""
        if c.significant:
            arrow = "▲" if (c.delta or 0) > 0 else "▼"
            mark = f" <strong class='moved' title='beyond run-to-run noise'>{arrow}</strong>"
        items.append(f"<li>{html.escape(format_change(c))}{mark}</li>")
    since = f"{prev.when:%Y-%m-%d %H:%M} UTC"
    given, derived = changed_parameters(prev.metrics, cur.metrics)
    said = [f"Parameters changed since then: {', '.join(given)}."] if given else []
    if derived:
        said.append(f"Derived from the data and changed: {', '.join(derived)}.")
    note = "".join(f"<p class='muted'>{html.escape(x)}</p>" for x in said)
    return (
        f"<div class='changes'><p class='muted'>Since the previous run ({html.escape(since)}):</p>"
        f"<ul>{''.join(items)}</ul>{note}</div>"
    )
