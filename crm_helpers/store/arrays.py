"""Events as sorted, integer-coded numpy arrays: the layout of the embedded kernels.

Semantics
---------
Input: events with ``user_id``, ``event``, ``ts`` (naive UTC) as the data contract cleans
them; rows with a missing ``user_id``, ``event`` or ``ts`` are left out.

*Codes.* ``user_ids`` holds the distinct user ids in ascending order and ``user[i]`` is the
position of row ``i``'s id in it (int32); ``event_names`` holds the distinct event names in
code-point order and ``event[i]`` the position of row ``i``'s name (int32). Codes therefore
do not depend on the order of the input rows.

*Times.* ``t`` is integer epoch microseconds (int64), sub-microsecond parts truncated toward
minus infinity, as :func:`crm_helpers.engine.epoch_us` computes in the engines.

*Order.* Rows are sorted by ``(user, t, event)`` (and, within identical triples, the
properties follow the input's order: the sort is stable). ``offsets`` (int64, length
``n_users + 1``) bounds each user's rows: user ``u``'s events are rows
``offsets[u]:offsets[u + 1]``, never empty.

*Properties.* Other columns (event properties) ride along in ``columns`` in the same row
order, as numpy arrays (object dtype for strings, missing values as ``None``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

__all__ = ["EventArrays", "from_frame"]


@dataclass(frozen=True)
class EventArrays:
    """Events sorted by ``(user, t, event)``, coded to integers (see the module docstring).

    Attributes
    ----------
    user
        int32, shape (n,): user code per row, non-decreasing.
    t
        int64, shape (n,): epoch microseconds, non-decreasing within each user.
    event
        int32, shape (n,): event code per row.
    offsets
        int64, shape (n_users + 1,): ``offsets[u]:offsets[u + 1]`` are user ``u``'s rows.
    user_ids
        shape (n_users,): the user ids, ascending; ``user_ids[user[i]]`` is row ``i``'s id.
    event_names
        The event names in code-point order; ``event_names[event[i]]`` is row ``i``'s name.
    columns
        Property column name -> array of shape (n,) in the same row order.
    """

    user: np.ndarray
    t: np.ndarray
    event: np.ndarray
    offsets: np.ndarray
    user_ids: np.ndarray
    event_names: tuple[str, ...]
    columns: Mapping[str, np.ndarray] = field(default_factory=dict)

    @property
    def n_events(self) -> int:
        return int(self.t.shape[0])

    @property
    def n_users(self) -> int:
        return int(self.user_ids.shape[0])

    def event_code(self, name: str) -> int | None:
        """The code of an event name, None when no row has it."""
        i = int(np.searchsorted(np.asarray(self.event_names, dtype=object), name))
        return i if i < len(self.event_names) and self.event_names[i] == name else None

    def check(self) -> EventArrays:
        """Raise ``ValueError`` when the arrays break the layout's invariants; else self."""
        n = self.n_events
        for name, a, dtype in (
            ("user", self.user, np.int32),
            ("t", self.t, np.int64),
            ("event", self.event, np.int32),
        ):
            if a.dtype != dtype or a.shape != (n,):
                raise ValueError(
                    f"{name}: expected {np.dtype(dtype)} of shape ({n},), got {a.dtype} {a.shape}"
                )
        if (
            self.offsets.shape != (self.n_users + 1,)
            or self.offsets[0] != 0
            or self.offsets[-1] != n
        ):
            raise ValueError("offsets do not bound the rows")
        if n:
            if np.any(np.diff(self.offsets) <= 0):
                raise ValueError("a user has no rows")
            if np.any(np.diff(self.user) < 0):
                raise ValueError("rows are not sorted by user")
            same = self.user[1:] == self.user[:-1]
            dt = np.diff(self.t)
            if np.any(same & (dt < 0)):
                raise ValueError("rows are not sorted by time within a user")
            if np.any(same & (dt == 0) & (np.diff(self.event) < 0)):
                raise ValueError("rows at one time are not sorted by event code")
            if self.event.min() < 0 or self.event.max() >= len(self.event_names):
                raise ValueError("event codes outside the names")
        if list(self.event_names) != sorted(self.event_names):
            raise ValueError("event names are not in code-point order")
        for name, a in self.columns.items():
            if a.shape != (n,):
                raise ValueError(f"column {name!r} has shape {a.shape}, expected ({n},)")
        return self


def _epoch_us(ts: pd.Series) -> np.ndarray:
    s = pd.to_datetime(ts)
    if getattr(s.dt, "tz", None) is not None:
        s = s.dt.tz_convert("UTC").dt.tz_localize(None)
    return s.astype("datetime64[us]").to_numpy().view("int64")


def from_frame(events: pd.DataFrame, columns: Sequence[str] = ()) -> EventArrays:
    """Events (pandas: ``user_id``, ``event``, ``ts`` and optional property columns) ->
    :class:`EventArrays`.

    The plain reference builder: the store builds the same arrays in the engine, and tests
    compare the two.

    Parameters
    ----------
    events
        DataFrame with ``user_id``, ``event``, ``ts`` (datetime, naive UTC or tz-aware).
    columns
        Property columns to carry along.
    """
    df = events.loc[
        events["user_id"].notna() & events["event"].notna() & events["ts"].notna(),
        ["user_id", "event", "ts", *columns],
    ]
    t = _epoch_us(df["ts"]) if len(df) else np.zeros(0, dtype=np.int64)
    ucode, uids = pd.factorize(df["user_id"], sort=True)
    ecode, names = pd.factorize(df["event"].astype(str), sort=True)
    order = np.lexsort((ecode, t, ucode))
    user = ucode[order].astype(np.int32)
    counts = np.bincount(user, minlength=len(uids)) if len(df) else np.zeros(0, dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    cols = {}
    for c in columns:
        a = df[c].to_numpy()[order]
        if a.dtype == object:
            a = np.array([None if pd.isna(v) else v for v in a], dtype=object)
        cols[c] = a
    return EventArrays(
        user=user,
        t=t[order].astype(np.int64),
        event=ecode[order].astype(np.int32),
        offsets=offsets,
        user_ids=np.asarray(uids),
        event_names=tuple(str(n) for n in names),
        columns=cols,
    ).check()
