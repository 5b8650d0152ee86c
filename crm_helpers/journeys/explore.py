"""Live exploration of journeys: the groups to compare and the tables one choice shows.

Semantics
---------
- :func:`journey_groups`: the journeys split into groups to compare. Without a column the
  groups are ``"converters"`` and ``"drop-outs"`` (the goal within the window,
  :func:`~crm_helpers.journeys.analysis.converter_groups`); with a users ``column`` each
  journey takes its user's value (:func:`~crm_helpers.journeys.analysis.user_groups`).
  The group names come back largest first (ties by name); converters vs drop-outs are
  always ``["drop-outs", "converters"]`` (the reference group first).
- :func:`explore_tables`: what the live controls show for one choice: the paths after the
  anchor (:func:`~crm_helpers.journeys.paths.paths`) and the differential step matrix of
  group B against group A (:func:`~crm_helpers.journeys.analysis.differential_step_matrix`).

The live controls that show these tables (:class:`crm_helpers.widgets.JourneyControls`)
live in the widget layer: this module computes and never draws.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import ibis.expr.types as ir
import pandas as pd

from crm_helpers.journeys import analysis
from crm_helpers.journeys.core import Prepared
from crm_helpers.journeys.paths import paths, step_matrix

__all__ = [
    "ExploreResult",
    "explore_tables",
    "group_columns",
    "journey_groups",
]

CONVERTERS = ("drop-outs", "converters")


def group_columns(data: Any) -> list[str]:
    """Users columns to compare journeys by (schema only, no query): every column of the
    ``users`` table but the id, timestamps and floating-point numbers; [] without users."""
    tables = getattr(data, "tables", None) or {}
    users = tables.get("users")
    if users is None:
        return []
    sch = users.schema()
    return [
        c
        for c in users.columns
        if c != "user_id" and not sch[c].is_temporal() and not sch[c].is_floating()
    ]


def journey_groups(
    prep: Prepared,
    users: ir.Table | None,
    column: str,
    goal: str,
    window_days: float | None,
) -> tuple[ir.Table, list[str]]:
    """Journey keys with a ``group`` column, and the group names (see the module docstring).

    Parameters
    ----------
    users
        The users table (needed only with ``column``).
    column
        A users column, or ``""`` for converters vs drop-outs of ``goal`` within
        ``window_days``.

    Returns
    -------
    (groups, names)
        ``groups``: Ibis table ``(*keys, group)``, one row per journey with a group,
        cached in the engine (the step matrix and the edge comparison both read it);
        ``names``: group names, largest first (``["drop-outs", "converters"]`` without a
        column).
    """
    if not column:
        return analysis.converter_groups(prep, goal, window_days).cache(), list(CONVERTERS)
    if users is None:
        raise ValueError(f"grouping by {column!r} needs a users table")
    groups = analysis.user_groups(prep, users, column).cache()
    sizes = groups.group_by("group").aggregate(n=groups.count()).to_pandas()
    sizes = sizes.sort_values(["n", "group"], ascending=[False, True])
    return groups, [str(g) for g in sizes["group"]]


@dataclass(frozen=True)
class ExploreResult:
    """What one choice of the live controls shows.

    Attributes
    ----------
    paths
        :func:`~crm_helpers.journeys.paths.paths` after the anchor.
    differential
        :func:`~crm_helpers.journeys.analysis.differential_step_matrix` (B - A), or None
        when fewer than two groups are chosen.
    choice
        The choice: ``anchor, depth, group_column, group_a, group_b``.
    """

    paths: pd.DataFrame
    differential: pd.DataFrame | None
    choice: dict[str, Any]


def explore_tables(
    prep: Prepared,
    groups: ir.Table | None,
    *,
    anchor: str,
    depth: int,
    group_a: str | None,
    group_b: str | None,
    max_steps: int = 8,
    group_column: str = "",
    goal: str | None = None,
) -> ExploreResult:
    """The tables of one choice (see the module docstring); ``groups`` from
    :func:`journey_groups`. Converters vs drop-outs (no ``group_column``) of a ``goal``
    compare their journeys before the goal
    (:func:`~crm_helpers.journeys.analysis.converter_step_matrix`)."""
    after = paths(prep, anchor, int(depth), "after")
    diff = None
    if groups is not None and group_a and group_b and group_a != group_b:
        chosen = groups.filter(groups.group.isin([group_a, group_b]))
        if not group_column and goal is not None:
            matrix = analysis.converter_step_matrix(prep, chosen, goal, max_steps)
        else:
            matrix = step_matrix(prep, max_steps, groups=chosen)
        diff = analysis.differential_step_matrix(matrix, group_a, group_b)
    choice = {
        "anchor": anchor,
        "depth": int(depth),
        "group_column": group_column,
        "group_a": group_a,
        "group_b": group_b,
    }
    return ExploreResult(after, diff, choice)
