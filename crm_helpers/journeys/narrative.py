"""Notebook glue for the journey report: parameters -> spec and defaults, tables -> findings.

:func:`spec_from_params` turns the literal parameters of ``notebooks/journey_mapping.ipynb``
into a :class:`~crm_helpers.journeys.core.JourneySpec`; :func:`default_anchor` and
:func:`default_goal` derive the empty ``anchor_event`` / ``goal_event`` from node reach
(the report's goal is :func:`crm_helpers.journeys.defaults.choose_goal`: the conversion
first, this rule only without one);
:func:`biggest_leak` finds the step most journeys end at; :func:`journey_summary` writes the
plain-language findings. Every number in a sentence is read from the tables passed in, and
every name from the data goes through :func:`crm_helpers.report.text.md`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import pandas as pd

from crm_helpers.journeys.core import CHURNED, END, SYNTHETIC, JourneySpec
from crm_helpers.report.text import Safe, code, md

__all__ = [
    "biggest_leak",
    "default_anchor",
    "default_goal",
    "first_difference",
    "journey_summary",
    "main_path",
    "stage_spec",
    "metrics_nodes",
    "metrics_paths",
    "path_text",
    "significant_cells",
    "spec_from_params",
]


def spec_from_params(
    *,
    step_rules: Sequence[Mapping[str, Any]] | None = None,
    step_mapping: Mapping[str, str] | None = None,
    step_patterns: Mapping[str, str] | None = None,
    unmapped: str = "keep",
    collapse_repeats: bool = True,
    session_gap_minutes: float = 0.0,
    session_column: str | None = None,
    churn_days: float = 0.0,
    start_date: str = "",
    end_date: str = "",
) -> JourneySpec:
    """A :class:`JourneySpec` from notebook parameters (``0`` / empty means "not used").

    Synthetic ``[start]`` / ``[end]`` nodes are always added (the report's leaks need them);
    ``churn_days > 0`` names ``[churned]`` ends. With ``session_gap_minutes > 0`` journeys
    are sessions: by ``session_column`` when given (the events have one), else cut at
    silences longer than the gap; ``0``: one journey per user.
    """
    sessions = bool(session_gap_minutes)
    return JourneySpec(
        rules=list(step_rules) if step_rules else None,
        mapping=dict(step_mapping) if step_mapping else None,
        patterns=dict(step_patterns) if step_patterns else None,
        unmapped=unmapped,
        collapse_repeats=bool(collapse_repeats),
        session_gap_minutes=(session_gap_minutes or None) if not session_column else None,
        session_column=session_column if sessions else None,
        start_end=True,
        churn_days=churn_days or None,
        start=start_date or None,
        end=end_date or None,
    )


def main_path(to_goal: pd.DataFrame, goal: str) -> list[str]:
    """The most common path into the goal (real steps only, ending at the goal);
    ``[goal]`` when no journey reaches it."""
    if not len(to_goal):
        return [goal]
    return [s for s in to_goal["path"].iloc[0] if s not in SYNTHETIC]


def stage_spec(spec: JourneySpec, stage_map: Mapping[str, str]) -> JourneySpec:
    """``spec`` with events mapped to stages (others dropped) and repeats collapsed."""
    return replace(
        spec, mapping=dict(stage_map), patterns=None, unmapped="drop", collapse_repeats=True
    )


def _real(reach: pd.DataFrame) -> pd.DataFrame:
    return reach[~reach["step"].isin(SYNTHETIC)]


def default_anchor(reach: pd.DataFrame) -> str:
    """The most frequent step (most events; ties: the first name)."""
    r = _real(reach)
    if r.empty:
        raise ValueError("no journey steps in the data: cannot choose an anchor event")
    return str(r.sort_values(["events", "step"], ascending=[False, True])["step"].iloc[0])


def default_goal(reach: pd.DataFrame, min_share_of_events: float = 0.01) -> str:
    """The rarest *frequent* step: fewest users among steps with at least
    ``min_share_of_events`` of all (real) events (all steps if none has); ties: the first
    name. The report's goal is :func:`crm_helpers.journeys.defaults.choose_goal`, which
    prefers the conversion and falls back on this."""
    r = _real(reach)
    if r.empty:
        raise ValueError("no journey steps in the data: cannot choose a goal event")
    freq = r[r["events"] >= min_share_of_events * r["events"].sum()]
    r = freq if len(freq) else r
    return str(r.sort_values(["users", "step"], ascending=[True, True])["step"].iloc[0])


def biggest_leak(edges: pd.DataFrame, goal: str | None = None) -> pd.Series | None:
    """The real step (not the goal) with the most journeys ending right after it.

    Returns the row ``step, ended, exits, share`` (ended / exits), or None without end nodes.
    """
    ends = edges[edges["target"].isin([END, CHURNED]) & ~edges["source"].isin(SYNTHETIC)]
    if goal is not None:
        ends = ends[ends["source"] != goal]
    if ends.empty:
        return None
    exits = edges.groupby("source")["count"].sum()
    by = ends.groupby("source", as_index=False)["count"].sum()
    by["exits"] = by["source"].map(exits)
    by["share"] = by["count"] / by["exits"]
    by = by.sort_values(["count", "source"], ascending=[False, True])
    row = by.iloc[0]
    return pd.Series(
        {"step": row["source"], "ended": int(row["count"]), "exits": int(row["exits"]),
         "share": float(row["share"])}
    )  # fmt: skip


def path_text(path: Sequence[str]) -> str:
    """Safe Markdown of a path: ``<code>a</code> → <code>b</code>``."""
    return Safe(" → ".join(code(s) for s in path))


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def journey_summary(
    *,
    goal: str,
    to_goal: pd.DataFrame,
    leak: pd.Series | None,
    differential: pd.DataFrame | None,
    conformance_rate: float | None,
    intended: Sequence[str] = (),
    unit: str = "journeys",
) -> list[str]:
    """Plain-language findings (safe Markdown lines).

    Parameters
    ----------
    to_goal
        :func:`~crm_helpers.journeys.paths.paths` before the goal.
    leak
        :func:`biggest_leak`.
    differential
        :func:`~crm_helpers.journeys.analysis.differential_step_matrix` of drop-outs (a)
        vs converters (b), or None; its headline is :func:`first_difference` (never the
        goal itself).
    conformance_rate
        Share of journeys following ``intended`` (None: not computed).
    """
    lines: list[str] = []
    if len(to_goal):
        top = to_goal.iloc[0]
        path = [s for s in top["path"] if s not in SYNTHETIC] or list(top["path"])
        lines.append(
            md(
                "The most common way into {goal}: {path} ({n:,} {unit}, {p} of those reaching it).",
                goal=code(goal),
                path=path_text(path),
                n=int(top["journeys"]),
                unit=unit,
                p=_pct(top["share"]),
            )  # fmt: skip
        )
    else:
        lines.append(md("No journey reached {goal} in the chosen data.", goal=code(goal)))
    if leak is not None:
        lines.append(
            md(
                "The biggest leak is after {step}: {n:,} {unit} end there, {p} of the {x:,} "
                "transitions out of {step} (the others go on to a next step).",
                step=code(leak["step"]),
                n=int(leak["ended"]),
                unit=unit,
                p=_pct(leak["share"]),
                x=int(leak["exits"]),
            )  # fmt: skip
        )
    if differential is not None and len(differential):
        r, n_sig = first_difference(differential, goal)
        if r is not None:
            lines.append(
                md(
                    "Converters' journeys first differ from drop-outs' at step {k}, before the "
                    "goal: {a} of converters vs {b} of drop-outs are on {step} ({n} significant "
                    "cells, Benjamini-Hochberg 5%).",
                    k=int(r["position"]),
                    a=_pct(r["share_b"]),
                    b=_pct(r["share_a"]),
                    step=code(r["step"]),
                    n=n_sig,
                )  # fmt: skip
            )
        else:
            lines.append(
                md(
                    "Converters' and drop-outs' step matrices before the goal do not differ "
                    "significantly."
                )
            )
    if conformance_rate is not None and len(intended):
        lines.append(
            md(
                "{p} of {unit} follow the intended journey {path} (in order, other steps allowed between).",
                p=_pct(conformance_rate),
                unit=unit,
                path=path_text(intended),
            )  # fmt: skip
        )
    return lines


def first_difference(
    differential: pd.DataFrame, goal: str | None = None
) -> tuple[pd.Series | None, int]:
    """The first informative difference of a differential step matrix and the number of
    informative significant cells.

    Informative cells are significant cells on a real step other than ``goal`` (the goal and
    the synthetic ``[start]`` / ``[end]`` / ``[churned]`` nodes differ between converters
    and drop-outs by definition). The first is the one at the lowest position; at that
    position, the largest absolute difference (ties: the first step name).
    """
    sig = differential[differential["significant"]]
    sig = sig[~sig["step"].isin([*SYNTHETIC, *([goal] if goal is not None else [])])]
    if sig.empty:
        return None, 0
    at = sig[sig["position"] == sig["position"].min()]
    at = at.assign(_abs=at["diff"].abs()).sort_values(["_abs", "step"], ascending=[False, True])
    return at.iloc[0].drop("_abs"), len(sig)


def metrics_nodes(reach: pd.DataFrame) -> list[dict[str, Any]]:
    """The ``nodes`` entry of ``metrics.json``: ``{step, users, journeys, events}``."""
    return [
        {"step": str(r.step), "users": int(r.users), "journeys": int(r.journeys), "events": int(r.events)}
        for r in reach.itertuples(index=False)
    ]  # fmt: skip


def significant_cells(
    diff: pd.DataFrame, a: str = "drop-outs", b: str = "converters"
) -> list[dict[str, Any]]:
    """The significant cells of a differential step matrix for ``metrics.json``."""
    sig = diff[diff["significant"]].sort_values("q_value")
    return [
        {"position": int(r.position), "step": str(r.step), f"share_{b}": float(r.share_b),
         f"share_{a}": float(r.share_a), "diff": float(r.diff), "q_value": float(r.q_value)}
        for r in sig.itertuples(index=False)
    ]  # fmt: skip


def metrics_paths(variants_df: pd.DataFrame, top_n: int) -> list[dict[str, Any]]:
    """The ``top_paths`` entry of ``metrics.json``: ``{path, truncated, journeys, converted}``."""
    return [
        {"path": list(r.path), "truncated": bool(r.truncated), "journeys": int(r.journeys),
         "converted": int(r.converted)}
        for r in variants_df.head(top_n).itertuples(index=False)
    ]  # fmt: skip


def metrics_group_paths(paths_df: pd.DataFrame, top_n: int) -> list[dict[str, Any]]:
    """One group's entry of ``metrics.group_paths``: ``{path, journeys, share}``, top first."""
    return [
        {"path": list(r.path), "journeys": int(r.journeys), "share": float(r.share)}
        for r in paths_df.head(top_n).itertuples(index=False)
    ]
