"""Journey preparation in the engine: events -> coded journey steps (Ibis, DuckDB and Spark).

Semantics
---------
Input: ``events`` with ``user_id, event, ts`` (naive UTC); optional session column.
Times are integer epoch microseconds ``t`` (:func:`crm_helpers.engine.epoch_us`).

*Steps.* An event row matched by a *step rule* (``rules``: ``{"step", "event", "where"}``,
the event name and property filters of :func:`crm_helpers.events.match`, as funnel steps
use them; the first matching rule wins) takes the rule's step, e.g. ``{"step": "sports
view", "event": "product_view", "where": {"category": "sports"}}``. Any other row is mapped
by its raw event name: by ``mapping`` (exact name), else by
the first regular expression of ``patterns`` that matches it (``re.search``), else it is
*unmapped*: kept under its own name (``unmapped="keep"``, the default), dropped
(``"drop"``) or renamed ``"other"`` (``"other"``). Without mapping and patterns the steps are
the raw event names. Rows with an empty ``user_id`` or ``ts`` are ignored; with ``start`` /
``end`` only events with ``start <= ts < end`` are used.

*Journeys.* A journey is a user's whole (date-restricted) event stream, or, with
``session_gap_minutes``, a run of the user's events where each event follows the previous
one by at most that many minutes (a longer silence starts a new journey), or, with
``session_column``, the user's events sharing one value of that column (empty values form
one journey per user).

*Tie rule* (shared with :mod:`crm_helpers.journeys.reference`). Within a journey events are
ordered by ``t`` and, at the same ``t``, by step *code*: ``[start]`` first, then the steps in
alphabetical (code point) order of their names, then ``[end]`` / ``[churned]``. Identical
rows (same user, time and step) are interchangeable, so the order is total up to them.

*Collapsing* (``collapse_repeats``) keeps only the first event of each run of consecutive
events with the same step (in the order above).

*Synthetic nodes* (``start_end``) add ``[start]`` at the journey's first time and ``[end]``
at its last time (both before collapsing). With ``churn_days`` the end node is
``[churned]`` instead when the silence after the journey — until the user's next journey,
or until ``observed_until`` (default: the last event time of the restricted data) — is at
least ``churn_days``.

The prepared table has columns ``user_id``, (``session``), ``t`` and ``code`` (int32);
:class:`Prepared` carries it with the vocabulary that decodes codes to names. Event names
are dictionary-encoded once (a ``CASE`` over the distinct names, known from one cached
``distinct event`` query); every later window (``LEAD``, ``row_number``) and aggregate runs
over small integers and names are decoded in pandas at the end.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import ibis
import ibis.expr.types as ir
import pandas as pd

from crm_helpers import events as ev
from crm_helpers.engine import epoch_us

__all__ = [
    "CHURNED",
    "END",
    "START",
    "JourneySpec",
    "Prepared",
    "prepare",
]

START = "[start]"
END = "[end]"
CHURNED = "[churned]"
SYNTHETIC = (START, END, CHURNED)
UNMAPPED = ("keep", "drop", "other")
OTHER = "other"
US_PER_SECOND = 1_000_000
US_PER_DAY = 86_400 * US_PER_SECOND


@dataclass(frozen=True)
class JourneySpec:
    """How raw events become journeys (see the module docstring for exact semantics).

    Parameters
    ----------
    rules
        Step rules ``[{"step": name, "event": raw name, "where": {column: value(s)}}, ...]``
        (``where`` optional); checked before ``mapping`` and ``patterns``, first match wins.
    mapping
        ``{raw event name: step name}``.
    patterns
        ``[(regex, step name), ...]`` or a mapping regex -> step; the first match wins.
    unmapped
        ``"keep"`` (default), ``"drop"`` or ``"other"``: what happens to unmapped events.
    collapse_repeats
        Keep only the first of consecutive events with the same step.
    session_gap_minutes
        Cut journeys at silences longer than this (``None``: no cut).
    session_column
        Cut journeys by this column's values instead (e.g. ``"session_id"``).
    start_end
        Add the synthetic ``[start]`` / ``[end]`` nodes.
    churn_days
        With ``start_end``: the end node is ``[churned]`` after at least this much silence.
    start, end
        Only events with ``start <= ts < end`` (naive values are UTC).
    observed_until
        End of observation for ``churn_days`` (default: the last event time used).
    """

    rules: Sequence[Mapping[str, Any]] | None = None
    mapping: Mapping[str, str] | None = None
    patterns: Sequence[tuple[str, str]] | Mapping[str, str] | None = None
    unmapped: Literal["keep", "drop", "other"] = "keep"
    collapse_repeats: bool = False
    session_gap_minutes: float | None = None
    session_column: str | None = None
    start_end: bool = False
    churn_days: float | None = None
    start: datetime | str | None = None
    end: datetime | str | None = None
    observed_until: datetime | str | None = None
    _regex: tuple = field(init=False, repr=False, compare=False, default=())

    def __post_init__(self) -> None:
        rules = []
        for r in self.rules or ():
            if isinstance(r, tuple) and len(r) == 3:  # normalised already (dataclasses.replace)
                r = {"step": r[0], "event": r[1], "where": r[2]}
            if not isinstance(r, Mapping) or not {"step", "event"} <= set(r):
                raise ValueError(f"a step rule is {{'step', 'event', 'where'}}, got {r!r}")
            extra = set(r) - {"step", "event", "where"}
            if extra:
                raise ValueError(f"step rule {r!r} has unknown keys {sorted(extra)}")
            if not isinstance(r["event"], str) or not r["event"]:
                raise ValueError(f"step rule {r!r}: event must be a non-empty string")
            rules.append(
                (_step_name(r["step"], r["event"]), r["event"], ev.norm_where(r.get("where")))
            )
        object.__setattr__(self, "rules", tuple(rules) or None)
        if self.mapping is not None:
            if not isinstance(self.mapping, Mapping):
                raise TypeError(f"mapping must be a dict raw event -> step, got {self.mapping!r}")
            object.__setattr__(
                self, "mapping", {str(k): _step_name(v, k) for k, v in self.mapping.items()}
            )
        pats = self.patterns
        if isinstance(pats, Mapping):
            pats = list(pats.items())
        regex = []
        for item in pats or ():
            if not (isinstance(item, tuple | list) and len(item) == 2):
                raise TypeError(f"patterns must be (regex, step) pairs, got {item!r}")
            rx, step = item
            try:
                regex.append((re.compile(str(rx)), _step_name(step, rx)))
            except re.error as e:
                raise ValueError(f"pattern {rx!r} is not a valid regular expression: {e}") from e
        object.__setattr__(self, "patterns", tuple((r.pattern, s) for r, s in regex) or None)
        object.__setattr__(self, "_regex", tuple(regex))
        if self.unmapped not in UNMAPPED:
            raise ValueError(f"unmapped must be one of {UNMAPPED}, got {self.unmapped!r}")
        g = self.session_gap_minutes
        if g is not None and (not isinstance(g, int | float) or not math.isfinite(g) or g <= 0):
            raise ValueError(f"session_gap_minutes must be a positive number, got {g!r}")
        if g is not None and self.session_column:
            raise ValueError("give session_gap_minutes or session_column, not both")
        c = self.churn_days
        if c is not None:
            if not isinstance(c, int | float) or not math.isfinite(c) or c <= 0:
                raise ValueError(f"churn_days must be a positive number, got {c!r}")
            if not self.start_end:
                raise ValueError("churn_days needs start_end=True (it names the end node)")
        start = ev.to_timestamp(self.start, "start")
        end = ev.to_timestamp(self.end, "end")
        if start is not None and end is not None and start >= end:
            raise ValueError(f"empty date range: start ({start}) must be before end ({end})")
        object.__setattr__(self, "start", start)
        object.__setattr__(self, "end", end)
        object.__setattr__(
            self, "observed_until", ev.to_timestamp(self.observed_until, "observed_until")
        )

    def step_of(self, event: str) -> str | None:
        """The step of a raw event name (``None``: dropped)."""
        if self.mapping and event in self.mapping:
            return self.mapping[event]
        for rx, step in self._regex:
            if rx.search(event):
                return step
        if self.mapping is None and not self._regex:
            return event
        return {"keep": event, "drop": None, "other": OTHER}[self.unmapped]

    @property
    def gap_us(self) -> int | None:
        g = self.session_gap_minutes
        return None if g is None else round(g * 60 * US_PER_SECOND)

    @property
    def churn_us(self) -> int | None:
        return None if self.churn_days is None else round(self.churn_days * US_PER_DAY)

    @property
    def sessionized(self) -> bool:
        return self.session_gap_minutes is not None or bool(self.session_column)


def _step_name(v: object, key: object) -> str:
    if not isinstance(v, str) or not v:
        raise ValueError(f"the step for {key!r} must be a non-empty string, got {v!r}")
    if v in SYNTHETIC:
        raise ValueError(f"{v!r} is reserved for the synthetic journey nodes")
    return v


@dataclass(frozen=True)
class Prepared:
    """Coded journey rows in the engine and what decodes them.

    Attributes
    ----------
    table
        Ibis table: ``user_id``, ``session`` (only when sessionized), ``t`` (epoch us),
        ``code`` (int32).
    vocab
        Step names by code: ``vocab[0] == "[start]"``, steps in name order, then ``[end]``,
        ``[churned]``.
    keys
        The journey key columns (``["user_id"]`` or ``["user_id", "session"]``).
    spec
        The :class:`JourneySpec` used.
    backend
        Backend name (``"duckdb"``, ``"pyspark"`` or None).
    arrays
        The same events as :class:`~crm_helpers.store.arrays.EventArrays` when
        :func:`prepare` was given them: the analyses that have a kernel then compute on
        the journeys built from them (:func:`crm_helpers.journeys.kernel.of`, built once
        and kept in ``memo``; the Ibis ``table`` stays for the others). Anything that
        changes ``table`` or ``vocab`` must drop them (``arrays=None``).
    """

    table: ir.Table
    vocab: tuple[str, ...]
    keys: tuple[str, ...]
    spec: JourneySpec
    backend: str | None
    arrays: Any = field(default=None, compare=False, repr=False)
    memo: dict = field(default_factory=dict, compare=False, repr=False)

    def code(self, step: str) -> int:
        """Code of a step name; ``ValueError`` naming close names when it is not a step."""
        try:
            return self.vocab.index(step)
        except ValueError:
            import difflib

            real = list(self.steps)
            close = difflib.get_close_matches(step, real, n=5, cutoff=0.4)
            raise ValueError(
                f"{step!r} is not a journey step in these data"
                + (f"; closest steps: {close}" if close else "")
                + f" ({len(real)} steps)"
            ) from None

    @property
    def steps(self) -> tuple[str, ...]:
        """The real (non-synthetic) step names, in code order."""
        return tuple(s for s in self.vocab if s not in SYNTHETIC)

    def decode(self, codes: pd.Series) -> pd.Series:
        """Codes -> step names (missing stays missing)."""
        names = dict(enumerate(self.vocab))
        vals = [None if pd.isna(c) else names[int(c)] for c in codes]
        return pd.Series(vals, index=codes.index, dtype=object)

    def window(self, **kw: Any) -> ibis.expr.builders.LegacyWindowBuilder:
        """The journey window: partition by the keys, order by ``t`` then ``code`` (by
        ``pos`` when the table has it: the same order, one integer to sort, and the order
        a recoded table such as the stage journeys keeps)."""
        order = ["pos"] if "pos" in self.table.columns else ["t", "code"]
        return ibis.window(group_by=list(self.keys), order_by=order, **kw)

    def cache(self, positions: bool = True) -> Prepared:
        """The same journeys computed once and kept in the engine (``Table.cache``): later
        analyses read the small coded rows instead of re-reading and re-preparing the
        events. With ``positions`` (the default) the rows carry ``pos``, so that later
        windows sort by one integer and position arithmetic needs no window; numbering
        the rows costs one sort, which pays off over many analyses (the notebook) and not
        over one or two (``positions=False``). On DuckDB the cached rows live in the
        connection's memory-bounded buffer pool (``engine.DUCKDB_MEMORY_LIMIT``): at tens
        of millions of events (~20 bytes a row) they hold most of the bound and later window
        sorts spill to disk; for one or two queries over such data the uncached
        :class:`Prepared` is faster (50M events: 43 vs 64 CPU s, benchmarks/README.md)."""
        table = self.with_pos() if positions else self.table
        return Prepared(
            table.cache(), self.vocab, self.keys, self.spec, self.backend, self.arrays, self.memo
        )

    def with_pos(self) -> ir.Table:
        """The table with ``pos``: 1-based position within the journey (tie rule order);
        the table itself when it has ``pos`` already (e.g. after :meth:`cache`)."""
        if "pos" in self.table.columns:
            return self.table
        return self.table.mutate(pos=(ibis.row_number().over(self.window()) + 1).cast("int32"))

    def join_keys(
        self, left: ir.Table, right: ir.Table, how: str = "inner", also: Sequence[str] = ()
    ) -> ir.Table:
        """``left`` joined to ``right`` on the journey keys (and the columns ``also``),
        null-safe on ``session``: a null session (events outside any session) matches a
        null session of the same user, as in the ``GROUP BY`` and window partitions that
        define the journeys. The result has ``left``'s key columns once."""
        keys = [*self.keys, *also]
        r = right.rename({f"{k}__r": k for k in keys})
        preds = [
            left[k].identical_to(r[f"{k}__r"]) if k == "session" else left[k] == r[f"{k}__r"]
            for k in keys
        ]
        return left.join(r, preds, how=how).drop([f"{k}__r" for k in keys])

    def semi_join_keys(self, left: ir.Table, right: ir.Table) -> ir.Table:
        """Rows of ``left`` whose journey keys appear in ``right`` (null-safe, as
        :meth:`join_keys`)."""
        keys = list(self.keys)
        r = right.select(*keys).rename({f"{k}__r": k for k in keys})
        preds = [
            left[k].identical_to(r[f"{k}__r"]) if k == "session" else left[k] == r[f"{k}__r"]
            for k in keys
        ]
        return left.semi_join(r, preds)


def prepare(
    events_or_data: Any, spec: JourneySpec | None = None, *, arrays: Any = None
) -> Prepared:
    """Events -> coded journey rows (lazy Ibis), per :class:`JourneySpec`.

    Parameters
    ----------
    events_or_data
        Ibis events table or a ``CRMData``.
    spec
        Default: raw event names, one journey per user, nothing added.
    arrays
        The SAME events as :class:`~crm_helpers.store.arrays.EventArrays` (the embedded
        engine's prepared store, with the property columns the spec filters or cuts on):
        the journeys are also built as arrays (:mod:`crm_helpers.journeys.kernel`, on first
        use) and the analyses with a kernel run on them. ``None`` (Spark, warehouses, no
        store) or a spec the kernel does not cover: the Ibis path alone.

    Returns
    -------
    Prepared
        ``table`` has one row per kept event (plus synthetic rows): user_id, [session], t, code.
    """
    spec = spec or JourneySpec()
    events = ev.events_of(events_or_data)
    ev.check_columns(events, [])
    if spec.session_column and spec.session_column not in events.columns:
        raise ValueError(
            f"session_column {spec.session_column!r} is not a column of events "
            f"(columns: {sorted(events.columns)}); use session_gap_minutes to cut by silence"
        )
    backend = ev.backend_name(events)
    raw = sorted(ev.known_events(events))
    clash = [n for n in raw if n in SYNTHETIC]
    if clash:
        raise ValueError(f"event names {clash} clash with the synthetic journey nodes")
    rules = spec.rules or ()
    matchers = [(f"step rule {step!r}", event, where) for step, event, where in rules]
    ev.check_columns(events, matchers)
    ev.check_events_exist(events, matchers)
    step_of = {r: spec.step_of(r) for r in raw}
    names = sorted({s for s in step_of.values() if s is not None} | {r[0] for r in rules})
    vocab = (START, *names, END, CHURNED)
    code_of = {s: i for i, s in enumerate(vocab)}
    raw_code = {r: code_of[s] for r, s in step_of.items() if s is not None}

    t = events
    conds = [t.user_id.notnull(), t.ts.notnull(), *ev.ts_bounds(t, spec.start, spec.end)]
    hits = [ev.match(t, event, where) for _, event, where in rules]
    if len(raw_code) < len(raw):
        keep = t.event.isin(sorted(raw_code)) if raw_code else ibis.literal(False)
        for h in hits:
            keep = keep | h
        conds.append(keep)
    t = t.filter(*conds)
    hits = [ev.match(t, event, where) for _, event, where in rules]
    if raw_code:
        code = t.event.substitute(raw_code, else_=ibis.null("int32")).cast("int32")
    else:
        code = ibis.null("int32")
    if rules:
        code = ibis.cases(
            *[(h, ibis.literal(code_of[r[0]], "int32")) for h, r in zip(hits, rules, strict=True)],
            else_=code,
        ).cast("int32")
    cols: dict[str, Any] = {"user_id": t.user_id}
    if spec.session_column:
        cols["session"] = t[spec.session_column]
    rows = t.select(**cols, t=epoch_us(t.ts, backend), code=code)
    keys = ["user_id"]
    if spec.session_gap_minutes is not None:
        w = ibis.window(group_by="user_id", order_by=["t", "code"])
        prev = rows.t.lag().over(w)
        new = (prev.isnull() | ((rows.t - prev) > spec.gap_us)).cast("int64")
        rows = rows.mutate(new=new)
        cum = ibis.window(group_by="user_id", order_by=["t", "code"], rows=(None, 0))
        rows = rows.mutate(session=rows.new.sum().over(cum)).select(
            "user_id", "session", "t", "code"
        )
    if spec.sessionized:
        keys = ["user_id", "session"]
    prep = Prepared(rows, vocab, tuple(keys), spec, backend)
    bounds = None
    if spec.start_end:
        bounds = rows.group_by(keys).aggregate(first=rows.t.min(), last=rows.t.max())
    if spec.collapse_repeats:
        # the window as a column first: a window inside a filter does not compile on Spark
        rows = rows.mutate(prev=rows.code.lag().over(prep.window()))
        rows = rows.filter(rows.prev.isnull() | (rows.prev != rows.code)).drop("prev")
    if bounds is not None:
        end_code = ibis.literal(code_of[END], "int32")
        if spec.churn_us is not None:
            until = spec.observed_until
            until_us = ev.ts_us(until) if until is not None else _max_t(bounds.last)
            nxt = bounds.first.lead().over(ibis.window(group_by="user_id", order_by="first"))
            silence = nxt.fill_null(until_us) - bounds.last
            end_code = ibis.ifelse(silence >= spec.churn_us, code_of[CHURNED], code_of[END]).cast(
                "int32"
            )
        starts = bounds.select(*keys, t=bounds.first, code=ibis.literal(0, "int32"))
        ends = bounds.select(*keys, t=bounds.last, code=end_code)
        rows = rows.union(starts, distinct=False).union(ends, distinct=False)
    return Prepared(rows, vocab, tuple(keys), spec, backend, arrays)


def _max_t(t: ir.IntegerValue) -> int:
    v = t.max().to_pyarrow().as_py()
    return 0 if v is None else int(v)
