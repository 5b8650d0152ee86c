"""Validate the data contract on load: clear errors that name table, column, rows and fix.

Errors stop the analysis with a :class:`DataContractError`; recoverable problems become
counted warnings that reports show in their data-quality section. Every check runs in
the engine (counts and a few example rows come back), never on pulled event data.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

import pandas as pd

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Finding:
    """One data-quality finding.

    ``examples`` holds at most a handful of offending rows as dicts.
    """

    table: str
    column: str | None
    check: str
    severity: Severity
    count: int
    message: str
    fix: str
    examples: tuple[dict, ...] = ()

    def describe(self) -> str:
        where = f"{self.table}.{self.column}" if self.column else self.table
        text = f"[{self.severity}] {where}: {self.message} ({self.count:,} row(s))."
        if self.examples:
            text += f"\n  e.g. {list(self.examples)[:3]}"
        return text + f"\n  Fix: {self.fix}"


class DataContractError(ValueError):
    """The data does not meet the contract; the message names table, column and fix."""

    def __init__(self, findings: list[Finding] | Finding):
        self.findings = [findings] if isinstance(findings, Finding) else list(findings)
        lines = [f.describe() for f in self.findings]
        super().__init__(
            "The data does not meet the CRM data contract (see data/README.md):\n" + "\n".join(lines)
        )


@dataclass
class DataQualityReport:
    """All findings of one load: errors (fatal) and warnings (counted, reported)."""

    findings: list[Finding] = field(default_factory=list)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "warning"]

    def raise_for_errors(self) -> None:
        if self.errors:
            raise DataContractError(self.errors)

    def to_frame(self) -> pd.DataFrame:
        """One row per finding: table, column, check, severity, count, message, fix."""
        cols = ["table", "column", "check", "severity", "count", "message", "fix"]
        rows = [{k: v for k, v in asdict(f).items() if k in cols} for f in self.findings]
        return pd.DataFrame(rows, columns=cols)


def validate(data) -> DataQualityReport:
    """Run every contract check on the raw tables of ``data`` (a :class:`~crm_helpers.data.CRMData`).

    Placeholder until the full checks land: reports missing required columns.
    """
    from crm_helpers.schema import CONTRACT

    report = DataQualityReport()
    for name, t in data.tables.items():
        for col, spec in CONTRACT[name].items():
            if spec.required and col not in t.columns:
                report.findings.append(
                    Finding(
                        table=name,
                        column=col,
                        check="missing_column",
                        severity="error",
                        count=0,
                        message=f"required column '{col}' is missing (columns: {list(t.columns)})",
                        fix=f"rename your column to '{col}' or map it in schema.yaml "
                        f"(columns: {{{name}: {{{col}: <your name>}}}}).",
                    )
                )
    return report
