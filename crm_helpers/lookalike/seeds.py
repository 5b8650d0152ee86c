"""Seed audiences and exclusions for lookalike expansion.

A seed is given as text (a notebook parameter), parsed by :func:`parse_seed`:

- ``"<event> >= N in D days"``: users with at least ``N`` such events in the last ``D`` days
  before ``as_of``. The event name is resolved with the shared vocabulary
  (:func:`crm_helpers.events.resolve_event`, as the funnel and experiment reports do):
  ``purchase`` finds ``buy``, ``order``, ``transaction``, … and a name differing only in
  case; a plural (``purchases``) is read as its singular. A name of the purchase stage counts
  rows of ``orders`` when the data have that table, else the data's purchase event. An
  event the data do not have is an error that lists the events they do have, closest first.
  (A small seed rule that segments can serve later.)
- ``"users.<column>"``: users whose boolean ``column`` is true; ``"users.<column> == value"``:
  users whose ``column`` equals ``value`` (compared as text).
- a path ending in ``.parquet`` or ``.csv``: a list of ids in its ``user_id`` column (or its
  only column).

:func:`defining_events` names what defines a count rule's seeds (the event and, for
purchases, the ``orders`` table): :mod:`crm_helpers.lookalike.pipeline` keeps those rows
out of every feature (the leakage rule, see :mod:`crm_helpers.lookalike.leakage`).

Seeds are then matched to the population (:func:`match_seeds`): ids not in it are counted
and kept in :attr:`SeedSet.missing`, never silently dropped. Ids from a file are compared
as text when their kind differs from the population's (``"42"`` matches ``42``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from crm_helpers.events import closest_first, known_events, resolve_event, stage_of

__all__ = [
    "SeedRule",
    "SeedSet",
    "SeedSource",
    "defining_events",
    "exclusion_ids",
    "match_seeds",
    "parse_seed",
    "seed_ids",
]

_COUNT = re.compile(r"^\s*([^\s>=]+)\s*>=\s*(\d+)\s+in\s+(\d+)\s+days?\s*$", re.IGNORECASE)
_COLUMN = re.compile(r"^\s*users\.(\w+)\s*(?:==\s*(.+?))?\s*$")


@dataclass(frozen=True)
class SeedRule:
    """A parsed seed: ``kind`` is ``"count"``, ``"column"`` or ``"file"``."""

    kind: str
    text: str
    event: str = ""
    min_count: int = 0
    days: int = 0
    column: str = ""
    value: str | None = None
    path: str = ""


def parse_seed(text: str) -> SeedRule:
    """Parse a seed rule (see the module docstring); a clear ``ValueError`` otherwise."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(
            "the seed is empty: give a rule such as 'purchase >= 3 in 90 days', "
            "'users.<column>' or a .parquet/.csv file of user ids"
        )
    s = text.strip()
    if s.lower().endswith((".parquet", ".csv")):
        return SeedRule("file", s, path=s)
    m = _COUNT.match(s)
    if m:
        n, days = int(m.group(2)), int(m.group(3))
        if n < 1 or days < 1:
            raise ValueError(f"seed rule {s!r}: the count and the days must be at least 1")
        return SeedRule("count", s, event=m.group(1), min_count=n, days=days)
    m = _COLUMN.match(s)
    if m:
        value = m.group(2)
        if value is not None:
            value = value.strip().strip("'\"")
        return SeedRule("column", s, column=m.group(1), value=value)
    raise ValueError(
        f"cannot read the seed {s!r}: expected '<event> >= N in D days' (e.g. 'purchase >= 3 "
        "in 90 days'), 'users.<column>' / 'users.<column> == value', or a path ending in "
        ".parquet or .csv"
    )


def _read_id_file(path: str) -> pd.Series:
    p = Path(path).expanduser()
    if not p.is_file():
        raise FileNotFoundError(f"seed file {p} not found")
    df = pd.read_parquet(p) if p.suffix.lower() == ".parquet" else pd.read_csv(p)
    if "user_id" in df.columns:
        ids = df["user_id"]
    elif df.shape[1] == 1:
        ids = df.iloc[:, 0]
    else:
        raise ValueError(
            f"seed file {p} has columns {list(df.columns)[:8]}: it needs a 'user_id' column"
        )
    return ids.dropna()


def seed_ids(data, seed: str | SeedRule, as_of: pd.Timestamp) -> pd.Series:
    """The seed users' ids (unique, in the data's id type except for files).

    Parameters
    ----------
    data : CRMData
    seed : str or SeedRule
    as_of : Timestamp
        End (exclusive) of a count rule's window, naive UTC.

    Returns
    -------
    pandas.Series of ids, shape (n_seeds,)
    """
    rule = parse_seed(seed) if isinstance(seed, str) else seed
    if rule.kind == "file":
        return pd.Series(pd.unique(_read_id_file(rule.path)), name="user_id")
    if rule.kind == "column":
        if not data.has("users", rule.column):
            raise ValueError(f"seed {rule.text!r}: the users table has no column {rule.column!r}")
        u = data.users
        col = u[rule.column]
        if rule.value is None:
            if not col.type().is_boolean():
                raise ValueError(
                    f"seed {rule.text!r}: users.{rule.column} is {col.type()}, not true/false; "
                    f"write 'users.{rule.column} == <value>'"
                )
            cond = col.fill_null(False)
        else:
            cond = col.cast("string") == rule.value
        ids = u.filter(cond).select("user_id").distinct().to_pandas()["user_id"]
        return ids.reset_index(drop=True)
    src = defining_events(data, rule)
    start = (as_of - pd.Timedelta(days=rule.days)).to_pydatetime()
    end = as_of.to_pydatetime()
    if src.orders:
        t = data.orders
        t = t.filter((t.ts >= start) & (t.ts < end))
    else:
        t = data.events
        t = t.filter((t.event == src.events[0]) & (t.ts >= start) & (t.ts < end))
    counts = t.group_by("user_id").aggregate(n=t.count())
    ids = counts.filter(counts.n >= rule.min_count).select("user_id").to_pandas()["user_id"]
    return ids.reset_index(drop=True)


@dataclass(frozen=True)
class SeedSource:
    """What defines a count rule's seeds: rows of ``orders`` and/or of these ``events``.

    Attributes
    ----------
    events : tuple of str
        Event names of the data whose rows define the seed (the rule's event as resolved;
        for a purchase rule counted on ``orders``, also the data's purchase event when the
        events have one: the same purchases seen twice). Empty for other seed kinds.
    orders : bool
        The rule counts rows of ``orders``.
    how : str
        How the rule's event was found (``"'purchase' is named 'buy' in the data"``; "" when
        as given).
    """

    events: tuple[str, ...] = ()
    orders: bool = False
    how: str = ""


def _stage(name: str) -> str | None:
    stage = stage_of(name)
    if stage is None and name.lower().endswith("s") and len(name) > 1:
        stage = stage_of(name[:-1])
    return stage


def defining_events(data, seed: str | SeedRule) -> SeedSource:
    """The rows that define a seed (see :class:`SeedSource`); empty unless a count rule.

    Raises
    ------
    ValueError
        The rule's event is not in the data: the message lists the events the data have,
        closest first.
    """
    rule = parse_seed(seed) if isinstance(seed, str) else seed
    if rule.kind != "count":
        return SeedSource()
    names = known_events(data.events) if data.has("events") else frozenset()
    purchase = _stage(rule.event) == "purchase"
    if purchase and data.has("orders"):
        ev, _ = resolve_event("purchase", names)
        return SeedSource(events=(ev,) if ev else (), orders=True, how="")
    ev, how = resolve_event(rule.event, names)
    if ev is None and rule.event.lower().endswith("s"):
        ev, how = resolve_event(rule.event[:-1], names)
        how = how or f"{rule.event!r} read as {ev!r}"
    if ev is None:
        ranked = closest_first(rule.event, names, limit=15)
        more = len(names) - len(ranked)
        raise ValueError(
            f"seed {rule.text!r}: no event {rule.event!r} in the data"
            + (" (nor an orders table)" if purchase else "")
            + f"; the events the data have, closest first: {ranked}"
            + (f" and {more} more" if more else "")
        )
    return SeedSource(events=(ev,), orders=False, how=how)


@dataclass(frozen=True)
class SeedSet:
    """Seeds matched to the population.

    Attributes
    ----------
    given : int
        Distinct seed ids given.
    index : numpy.ndarray of int, shape (found,)
        Row positions of the found seeds in the population's id array.
    missing : numpy.ndarray, shape (given - found,)
        Seed ids not in the population.
    """

    given: int
    index: np.ndarray
    missing: np.ndarray

    @property
    def found(self) -> int:
        return len(self.index)


def _comparable(ids: pd.Series, like: pd.Series) -> pd.Series:
    if pd.api.types.is_numeric_dtype(like) and not pd.api.types.is_numeric_dtype(ids):
        num = pd.to_numeric(ids, errors="coerce")
        whole = num.notna() & (num == np.floor(num))
        return ids.astype(str).where(~whole, num.astype("Int64").astype(str))
    return ids.astype(str)


def match_seeds(seeds: pd.Series, population_ids: pd.Series) -> SeedSet:
    """Find the seeds in the population (by id; as text when the id kinds differ).

    Parameters
    ----------
    seeds : pandas.Series, shape (n,)
    population_ids : pandas.Series, shape (n_users,)
        Unique ids; positions index the feature matrix.

    Returns
    -------
    SeedSet
    """
    seeds = pd.Series(pd.unique(pd.Series(seeds).dropna()))
    pop = pd.Series(population_ids).reset_index(drop=True)
    same_kind = pd.api.types.is_numeric_dtype(seeds) == pd.api.types.is_numeric_dtype(pop)
    if same_kind and pd.api.types.is_numeric_dtype(pop):
        key_s, key_p = seeds, pop
    else:
        key_s, key_p = _comparable(seeds, pop), _comparable(pop, pop)
    first = ~key_s.duplicated().to_numpy()  # "20" and "20.0" are one id
    seeds, key_s = seeds[first].reset_index(drop=True), key_s[first].reset_index(drop=True)
    pos = pd.Index(key_p).get_indexer(pd.Index(key_s))
    return SeedSet(
        given=len(seeds), index=np.sort(pos[pos >= 0]), missing=seeds[pos < 0].to_numpy()
    )


def exclusion_ids(
    data,
    as_of: pd.Timestamp,
    *,
    opted_out_column: str = "",
    recent_purchase_days: int = 0,
) -> pd.Series:
    """Users who must not be in the audience (besides the seeds).

    Parameters
    ----------
    data : CRMData
    as_of : Timestamp
    opted_out_column : str
        A boolean ``users`` column that is true for opted-out users; "" for none. Naming a
        column the users table lacks is an error (the user asked for it).
    recent_purchase_days : int
        Users with an order (or a ``purchase`` event without orders) in the last this many
        days before ``as_of``; 0 for none.

    Returns
    -------
    pandas.Series of unique ids
    """
    parts = []
    if opted_out_column:
        if not data.has("users", opted_out_column):
            raise ValueError(f"exclusion: the users table has no column {opted_out_column!r}")
        u = data.users
        col = u[opted_out_column]
        if not col.type().is_boolean():
            raise ValueError(
                f"exclusion: users.{opted_out_column} is {col.type()}, expected true/false"
            )
        parts.append(u.filter(col.fill_null(False)).select("user_id").to_pandas()["user_id"])
    if recent_purchase_days < 0:
        raise ValueError(f"recent_purchase_days must be >= 0, got {recent_purchase_days}")
    if recent_purchase_days:
        rule = SeedRule("count", "", event="purchase", min_count=1, days=int(recent_purchase_days))
        try:
            parts.append(seed_ids(data, rule, as_of))
        except ValueError:  # no purchase in the data: nobody bought recently
            pass
    if not parts:
        return pd.Series([], dtype=object, name="user_id")
    return pd.Series(pd.unique(pd.concat(parts, ignore_index=True)), name="user_id")
