"""The experiment readout's tables as a reader sees them (display only; the frames, and
``metrics.json``, keep their raw names and values).

Each function takes a frame of :mod:`crm_helpers.experiments.analysis` and returns an
``IPython.display.HTML`` built with :func:`crm_helpers.report.tables.to_html`:

* :func:`results` — the arms table (16 columns) as one small table per metric, headed by the
  metric and its role: arm, users, the per-user mean (a rate for 0/1 metrics), the difference
  and the relative lift each with its 95% interval in one cell, the corrected p-value, the
  chance to beat control, non-inferiority for guardrails; the uncorrected p-values in a
  collapsed block. The control row says ``baseline``; winsorized rows (outside the corrected
  family) say ``n/a`` under the corrected p-value, with a footnote.
* :func:`srm` — the sample-ratio table; without a plan, the planned shares, expected users and
  p-value are ``n/a`` with a footnote (not checked).
* :func:`cuped` — the CUPED table per metric, the coefficient in a collapsed block.
* :func:`power` — the power summary.

Money metrics (revenue and its winsorized twin, revenue ratios) carry ``currency``.
"""

from __future__ import annotations

import html
from typing import Any

import pandas as pd

from crm_helpers.experiments.metrics import ExperimentError, parse_metric
from crm_helpers.report import tables

__all__ = ["cuped", "metric_title", "power", "results", "srm"]

WINSORIZED_NOTE = (
    "winsorized metrics are a robustness check beside their raw metric, outside the "
    "corrected family of tests and the decision"
)
_ROLES = {
    "primary": "primary metric",
    "secondary": "secondary metric",
    "guardrail": "guardrail",
    "winsorized": "robustness check",
}


def _spec(metric: str):
    try:
        return parse_metric(str(metric))
    except ExperimentError:
        return None


def _binary(metric: str) -> bool:
    spec = _spec(metric)
    return bool(spec is not None and spec.binary)


def _money(metric: str) -> bool:
    spec = _spec(metric)
    if spec is None:
        return False
    if spec.is_ratio:
        return spec.numerator.kind == "revenue" and not spec.denominator.kind == "revenue"
    return spec.kind == "revenue"


def metric_title(metric: str, role: str | None = None) -> str:
    """``"conversion — primary metric"``; ``"revenue, winsorized — robustness check"``."""
    name = str(metric)
    if name.startswith("winsorized:"):
        name = name.removeprefix("winsorized:") + ", winsorized"
    return f"{name} — {_ROLES.get(role, role)}" if role else name


def _value_options(metric: str, currency: str) -> dict[str, Any]:
    """How the mean and difference of one metric read: a rate, money, or a plain number."""
    if _binary(metric):
        return {
            "percent": ["mean"],
            "signed": ["diff"],
            "labels": {"mean": "Rate", "diff": "Difference in rate"},
        }
    per_user = {"labels": {"diff": "Difference per user"}}
    if _money(metric):
        return {"money": ["mean", "diff"], "currency": currency, **per_user}
    return per_user


def _without_mean(options: dict[str, Any]) -> dict[str, Any]:
    """The options of a table without the per-user mean (CUPED shows only differences)."""
    out = {
        k: [c for c in v if c != "mean"] if isinstance(v, list) else v for k, v in options.items()
    }
    return out


def _with_label(options: dict[str, Any], **labels: str) -> dict[str, Any]:
    return {**options, "labels": {**options.get("labels", {}), **labels}}


def results(arms: pd.DataFrame, control: str, *, currency: str = ""):
    """The arms table per metric (see the module docstring)."""
    from IPython.display import HTML

    parts = []
    for metric, rows in arms.groupby("metric", sort=False):
        role = str(rows["role"].iloc[0])
        cols = ["variant", "n", "mean", "diff", "diff_ci_low", "diff_ci_high"]
        cols += ["rel_lift", "rel_ci_low", "rel_ci_high", "p_adjusted", "chance_to_beat_control"]
        if role == "guardrail":
            cols.append("non_inferior")
        cols.append("p_value")
        shown = rows[cols].reset_index(drop=True)
        if role == "guardrail":
            shown["non_inferior"] = shown["non_inferior"].astype(object)
        parts.append(f"<h4 class='crm-table-title'>{html.escape(metric_title(metric, role))}</h4>")
        parts.append(
            tables.to_html(
                shown,
                intervals={
                    "diff": ("diff_ci_low", "diff_ci_high"),
                    "rel_lift": ("rel_ci_low", "rel_ci_high"),
                },
                baseline={"variant": control},
                notes={"p_adjusted": WINSORIZED_NOTE} if role == "winsorized" else None,
                details=["p_value"],
                keys=["variant"],
                details_title="Uncorrected p-values",
                **_with_label(_value_options(metric, currency), p_value="p-value (uncorrected)"),
            )
        )
    return HTML("".join(parts))


def srm(table: pd.DataFrame):
    """The sample-ratio table (see the module docstring)."""
    from IPython.display import HTML

    why = "no planned split was given, so the split is not checked"
    return HTML(
        tables.to_html(
            table,
            percent=["planned_share", "observed_share"],
            labels={"srm_p_value": "p-value (sample ratio)", "expected_users": "Users expected"},
            notes={"planned_share": why, "expected_users": why, "srm_p_value": why},
        )
    )


def cuped(table: pd.DataFrame, *, currency: str = ""):
    """The CUPED comparisons per metric (see the module docstring)."""
    from IPython.display import HTML

    parts = []
    for metric, rows in table.groupby("metric", sort=False):
        parts.append(f"<h4 class='crm-table-title'>{html.escape(metric_title(metric))}</h4>")
        cols = ["variant", "diff", "diff_ci_low", "diff_ci_high", "rel_lift", "rel_ci_low"]
        cols += ["rel_ci_high", "p_value", "variance_reduction", "theta"]
        parts.append(
            tables.to_html(
                rows[[c for c in cols if c in rows.columns]].reset_index(drop=True),
                intervals={
                    "diff": ("diff_ci_low", "diff_ci_high"),
                    "rel_lift": ("rel_ci_low", "rel_ci_high"),
                },
                details=["theta"],
                keys=["variant"],
                details_title="CUPED coefficient",
                **_without_mean(_value_options(metric, currency)),
            )
        )
    return HTML("".join(parts))


def power(table: pd.DataFrame):
    """The power summary (see the module docstring)."""
    from IPython.display import HTML

    return HTML(
        tables.to_html(
            table,
            percent=["power"],
            signed=["target_relative_lift"],
            labels={
                "n_control": "Users in the control",
                "n": "Users in the arm",
                "target_relative_lift": "Lift to detect",
            },
        )
    )
