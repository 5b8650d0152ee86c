"""Metric names of an experiment readout, parsed once.

Grammar (the names are parameters of the notebook, so they are an interface):

* ``conversion`` — 1 if the user has at least one order in the analysis window, else 0;
* ``revenue`` — sum of order revenue in the window (net of refunds);
* ``orders`` — number of orders in the window;
* ``event:<name>`` — 1 if the user has an event ``<name>`` in the window, else 0;
* ``event_count:<name>`` — number of events ``<name>`` in the window;
* ``ratio:<numerator>/<denominator>`` — ratio of sums of two of the metrics above
  (e.g. ``ratio:revenue/event_count:visit``, revenue per visit); analysed with the delta
  method; split at the first ``/``;
* ``winsorized:<metric>`` — a non-ratio metric with each user's value capped at a pooled
  percentile of all users' values (heavy tails), reported beside the raw metric.

The analysis window of a user is ``[assigned_at, assigned_at + analysis_window_days]``: an
outcome at exactly the assignment time counts (at or after the assignment). The pre-period
(CUPED covariate) is ``[assigned_at - pre_period_days, assigned_at)``, strictly before it.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ExperimentError", "MetricSpec", "parse_metric"]

BASE_KINDS = ("conversion", "revenue", "orders")
EVENT_KINDS = ("event", "event_count")


class ExperimentError(ValueError):
    """An experiment readout that cannot be computed as asked; the message says why and how."""


@dataclass(frozen=True)
class MetricSpec:
    """One parsed metric.

    Attributes
    ----------
    name
        The name as given (the key in tables and ``metrics.json``).
    kind
        ``conversion``, ``revenue``, ``orders``, ``event``, ``event_count`` or ``ratio``.
    event
        The event name of ``event``/``event_count`` metrics, else None.
    numerator, denominator
        The parts of a ``ratio`` metric, else None.
    winsorized
        True for ``winsorized:<metric>``.
    """

    name: str
    kind: str
    event: str | None = None
    numerator: MetricSpec | None = None
    denominator: MetricSpec | None = None
    winsorized: bool = False

    @property
    def binary(self) -> bool:
        """Whether every user's value is 0 or 1 (a proportion)."""
        return self.kind in ("conversion", "event")

    @property
    def is_ratio(self) -> bool:
        return self.kind == "ratio"

    @property
    def tables(self) -> set[str]:
        """The contract tables this metric reads."""
        if self.is_ratio:
            return self.numerator.tables | self.denominator.tables  # type: ignore[union-attr]
        return {"events"} if self.kind in EVENT_KINDS else {"orders"}

    @property
    def events(self) -> set[str]:
        """Event names this metric counts."""
        if self.is_ratio:
            return self.numerator.events | self.denominator.events  # type: ignore[union-attr]
        return {self.event} if self.event is not None else set()


def parse_metric(name: str) -> MetricSpec:
    """Parse a metric name (see the module docstring); a clear :class:`ExperimentError` if bad.

    >>> parse_metric("ratio:revenue/event_count:visit").denominator.event
    'visit'
    """
    if not isinstance(name, str) or not name.strip():
        raise ExperimentError(f"metric name must be a non-empty string, got {name!r}")
    name = name.strip()
    if name in BASE_KINDS:
        return MetricSpec(name, name)
    head, sep, rest = name.partition(":")
    if sep and head in EVENT_KINDS:
        if not rest:
            raise ExperimentError(f"metric {name!r}: give the event name, e.g. '{head}:purchase'")
        return MetricSpec(name, head, event=rest)
    if sep and head == "ratio":
        num, slash, den = rest.partition("/")
        if not slash or not num or not den:
            raise ExperimentError(
                f"metric {name!r}: a ratio is 'ratio:<numerator>/<denominator>', "
                "e.g. 'ratio:revenue/event_count:visit'"
            )
        parts = parse_metric(num), parse_metric(den)
        if any(p.is_ratio or p.winsorized for p in parts):
            raise ExperimentError(
                f"metric {name!r}: numerator and denominator must be simple metrics"
            )
        return MetricSpec(name, "ratio", numerator=parts[0], denominator=parts[1])
    if sep and head == "winsorized":
        inner = parse_metric(rest)
        if inner.is_ratio or inner.winsorized or inner.binary:
            raise ExperimentError(
                f"metric {name!r}: only revenue, orders or event_count metrics can be winsorized"
            )
        return MetricSpec(name, inner.kind, event=inner.event, winsorized=True)
    raise ExperimentError(
        f"unknown metric {name!r}: use conversion, revenue, orders, event:<name>, "
        "event_count:<name>, ratio:<numerator>/<denominator> or winsorized:<metric>"
    )
