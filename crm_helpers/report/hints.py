"""Hints that suggest a command: ``-p name value`` with a value from the user's data, or none.

A note that tells the user what to pass (a skip note, an error) shows a real column or event
of their data. It never shows a placeholder such as ``<column>``: Markdown renders an
unknown tag as nothing, so ``-p breakdown_property <column>`` reads
``-p breakdown_property .`` in the report. When the data have no candidate, the hint is
left out and the note only says what to add.

Semantics
---------
- :func:`pass_param` formats ``-p name value`` as the shell takes it (``crm run``): a string
  value as is (shell-quoted when needed), a list or dict as JSON in single quotes; the
  command is shown in ``<code>``, the value escaped as :func:`~crm_helpers.report.text.code`
  does (the name, from the code, must be a plain identifier). An empty value
  (``None``, ``""``, ``[]``, ``{}``, or a list/dict holding only empty values) gives ``""``.
- :func:`groupable_column` is the first column of the given tables (in order) whose type is
  string, boolean or integer and that has 2 to ``max_levels`` distinct values, keys and
  timestamps excluded; None when there is none (one aggregate query per table).
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterable
from typing import Any

import ibis.expr.types as ir

from crm_helpers.report.text import Safe, code

__all__ = ["groupable_column", "pass_param"]

#: Columns that identify or date a row: never a suggested grouping column.
KEY_COLUMNS: frozenset[str] = frozenset(
    {"user_id", "order_id", "session_id", "event_id", "message_id", "experiment_id", "ts",
     "signup_at", "sent_at", "opened_at", "clicked_at", "assigned_at"}
)  # fmt: skip


def _empty(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, dict):
        return not value or all(_empty(v) for v in value.values())
    if isinstance(value, list | tuple):
        return not value or all(_empty(v) for v in value)
    return False


def pass_param(name: str, value: Any, prefix: str = "or pass ") -> Safe:
    """``prefix`` + the command ``-p name value`` (in monospace), or ``""`` for an empty value.

    Parameters
    ----------
    name
        The notebook parameter (trusted, from the code).
    value
        Its suggested value, taken from the data (escaped here).
    prefix
        Trusted words before the command, e.g. ``"or pass "`` or ``"Pass "``.

    Returns
    -------
    Safe
        Markdown, e.g. ``or pass <code>-p breakdown_property platform</code>``.

    Examples
    --------
    >>> str(pass_param("segment_column", "device"))
    'or pass <code>-p segment_column device</code>'
    >>> pass_param("segment_column", None)
    ''
    """
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
        raise ValueError(f"not a parameter name: {name!r}")
    if _empty(value):
        return Safe("")
    shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    inner = code(shlex.quote(shown)).removeprefix("<code>").removesuffix("</code>")
    return Safe(f"{prefix}<code>-p {name} {inner}</code>")


def groupable_column(
    tables: Iterable[ir.Table | None], exclude: Iterable[str] = (), max_levels: int = 20
) -> str | None:
    """The first column with 2 to ``max_levels`` values (see the module docstring), or None."""
    skip = KEY_COLUMNS | set(exclude)
    for t in tables:
        if t is None:
            continue
        cols = [
            c
            for c in t.columns
            if c not in skip
            and (t[c].type().is_string() or t[c].type().is_boolean() or t[c].type().is_integer())
        ]
        if not cols:
            continue
        n = t.aggregate(**{f"n{i}": t[c].nunique() for i, c in enumerate(cols)}).to_pandas()
        for i, c in enumerate(cols):
            if 2 <= int(n[f"n{i}"].iloc[0] or 0) <= max_levels:
                return c
    return None
