"""Validate the data contract on load: clear errors that name table, column, rows and fix.

Errors stop the analysis with a :class:`DataContractError`; recoverable problems become
counted warnings that reports show in their data-quality section, and the rows they
concern are dropped or kept as documented in ``data/README.md`` (cleaning is a lazy filter
on the loaded Ibis table; files are never rewritten). Every check runs in the engine: per
table one aggregate query for the row-level checks and at most one more for duplicates,
unknown users, events that share a user's timestamp, and at most one more per timestamp
column with dates beyond its future cutoff, and one for exact duplicate events only when
two events share a user and a timestamp (else none can be duplicates); example rows (at
most 5) are fetched only for failed checks. Distinct keys, unknown users and the date ends'
percentiles are counted the cheap way first, exactly (:mod:`crm_helpers.data.validate_scale`).

The checks of time (implausible dates in every timestamp column, lost time order) are
defined in :mod:`crm_helpers.data.validate_dates`; the findings and the report in
:mod:`crm_helpers.data.findings`. This module runs them all and re-exports their public names.
Numbers (``orders.revenue``, ``orders.quantity``) that are not finite or beyond
:data:`MAX_ABS_AMOUNT` in absolute value are errors (``absurd_number``).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import ibis
import ibis.expr.types as ir

from crm_helpers import config
from crm_helpers.data import validate_scale
from crm_helpers.data.findings import (
    N_EXAMPLES,
    DataContractError,
    DataQualityReport,
    Finding,
    Severity,
    _examples,
    _n,
    _RowCheck,
    _show,
    _TableContext,
)
from crm_helpers.data.validate_dates import (
    EARLIEST_PLAUSIBLE,
    FUTURE_SLACK,
    FUTURE_TOLERANCE,
    MAX_TIED_EVENT_SHARE,
    ROW_TIME,
    ancient_checks,
    future_dates,
    tied_finding,
    timestamp_columns,
    ts_rule,
)

if TYPE_CHECKING:  # pragma: no cover
    from crm_helpers.data.crmdata import CRMData

__all__ = [
    "EARLIEST_PLAUSIBLE",
    "FUTURE_SLACK",
    "FUTURE_TOLERANCE",
    "MAX_ABS_AMOUNT",
    "MAX_NULL_USER_EVENT_SHARE",
    "MAX_TIED_EVENT_SHARE",
    "N_EXAMPLES",
    "ROW_TIME",
    "DataContractError",
    "DataQualityReport",
    "Finding",
    "Severity",
    "validate",
]

#: Largest plausible absolute amount in a number column (``orders.revenue``,
#: ``orders.quantity``); larger values, infinities and NaN are contract errors.
MAX_ABS_AMOUNT = 1e12
#: Share of events with no user_id up to which they are dropped with a warning (else error).
MAX_NULL_USER_EVENT_SHARE = 0.01


# --- checks -----------------------------------------------------------------------------


def _fix_map(table: str, col: str, schema) -> str:
    src = schema.source_column(table, col)
    return (
        f"your column '{src}' is mapped to '{col}' in schema.yaml; check the mapping"
        if src != col
        else f"rename your column to '{col}', or map it in schema.yaml "
        f"(columns: {{{table}: {{{col}: <your column name>}}}})"
    )


def validate(data: CRMData) -> DataQualityReport:
    """Run every contract check on the tables of ``data`` (a :class:`~crm_helpers.data.CRMData`).

    Parameters
    ----------
    data
        Loaded data; checks run on ``data.raw`` (the tables as read, renamed), so calling
        this again on a loaded :class:`CRMData` gives the same report.

    Returns
    -------
    DataQualityReport
        Errors, warnings (with counts and up to 5 example rows) and the cleaning rules.
        Nothing is raised here; :func:`crm_helpers.data.load` raises on errors.
    """
    from crm_helpers.data.normalisation import plan_columns
    from crm_helpers.schema import CONTRACT, MESSAGE_CHANNELS, PRIMARY_KEYS

    report = DataQualityReport()
    raw = data.raw or data.tables
    backend = data.con.name
    schema = data.schema
    stages: dict[str, ibis.Table] = {}
    plans: dict = {}

    # 1. schema-level checks (no query): missing columns, wrong types.
    for name, t in raw.items():
        for col, spec in CONTRACT[name].items():
            if spec.required and col not in t.columns:
                src = schema.source_column(name, col)
                looked = f"'{src}' (mapped from '{col}')" if src != col else f"'{col}'"
                report.findings.append(
                    Finding(
                        table=name,
                        column=col,
                        check="missing_column",
                        severity="error",
                        count=0,
                        message=f"required column {looked} is missing; the file has columns "
                        f"{list(t.columns)}",
                        fix=_fix_map(name, col, schema) + ".",
                    )
                )
        plan = plan_columns(t, name, schema, data.tz_aware.get(name, frozenset()), backend)
        for f in plan.findings:  # wrong types: show a few values as they are in the file
            show = [c for c in (*PRIMARY_KEYS.get(name, ("user_id",)), f.column) if c in t.columns]
            ex = _examples(t.filter(t[f.column].notnull()).select(*dict.fromkeys(show)))
            report.findings.append(replace(f, examples=ex[:3]))
        keep = {f"_crm_raw_{c}": t[c] for c in plan.text_timestamps | plan.float_ids}
        stages[name] = t.mutate(**keep).mutate(**plan.exprs) if plan.exprs else t
        plans[name] = plan

    # user_id must have one type across tables for the referential checks.
    id_kind = {
        n: ("text" if stages[n]["user_id"].type().is_string() else "number")
        for n in stages
        if "user_id" in plans[n].checkable
    }
    if "users" in id_kind:
        for n, kind in id_kind.items():
            if n != "users" and kind != id_kind["users"]:
                report.findings.append(
                    Finding(
                        table=n,
                        column="user_id",
                        check="id_type_mismatch",
                        severity="error",
                        count=0,
                        message=f"user_id holds {kind} here but {id_kind['users']} in users, "
                        "so rows cannot be matched to users",
                        fix=f"store user_id with the same type in users and {n} (e.g. text "
                        "in both).",
                    )
                )
                plans[n].checkable.discard("user_id")

    # 2. value checks, in the engine.
    users_ids = (
        stages["users"].select("user_id")
        if "users" in stages and "user_id" in plans["users"].checkable
        else None
    )
    now = config.load_time()  # $CRM_LOAD_TIME: a rerun validates as of its record
    contexts = [
        _TableContext(
            name=name,
            stage=stage,
            plan=plans[name],
            schema=schema,
            users_ids=users_ids if name != "users" else None,
            now=now,
            keys=PRIMARY_KEYS.get(name, ()),
            channels=MESSAGE_CHANNELS,
            contract=CONTRACT[name],
        )
        for name, stage in stages.items()
    ]
    # every table's counts in ONE query: one-row aggregates, cross-joined (a single job on
    # Spark, where each query has a fixed start-up cost)
    guess = validate_scale.guesses(data, contexts, backend)  # free on Parquet, else {}
    queries = [_table_queries(ctx, backend, guess) for ctx in contexts]
    parts = [p for _, ps in queries for p in ps]
    row: dict = {}
    if parts:
        joined = parts[0]
        for p in parts[1:]:
            joined = joined.cross_join(p)
        row = joined.to_pyarrow().to_pylist()[0]
        row.update(guess)
        validate_scale.complete(data.con, contexts, row)
    for ctx, (checks, _) in zip(contexts, queries, strict=True):
        prefix = f"{ctx.name}__"
        mine = {k[len(prefix) :]: v for k, v in row.items() if k.startswith(prefix)}
        _check_table(report, ctx, checks, mine)
    return report


def _row_checks(ctx: _TableContext) -> list[_RowCheck]:
    """The row-level checks of one table (each a boolean condition over its rows)."""
    t, name, ok, plan = ctx.stage, ctx.name, ctx.plan.checkable, ctx.plan
    key_cols = list(ctx.keys) or ["user_id"]
    checks: list[_RowCheck] = []
    for col, spec in ctx.contract.items():
        if col not in ok:
            continue
        show = [c for c in dict.fromkeys([*key_cols, col]) if c in t.columns]
        if col in plan.float_ids:
            raw = t[f"_crm_raw_{col}"]
            checks.append(
                _RowCheck(
                    f"frac_{col}",
                    col,
                    "wrong_type",
                    "error",
                    raw.notnull() & (raw != raw.floor()),
                    "the column should hold whole numbers (an identifier) but holds decimal "
                    "numbers with fractions",
                    f"store {name}.{col} as whole numbers or text; values like 12.5 usually mean "
                    "the wrong column was exported or ids were averaged.",
                    show,
                )
            )
        if col in plan.text_timestamps:
            raw = t[f"_crm_raw_{col}"]
            checks.append(
                _RowCheck(
                    f"unparse_{col}",
                    col,
                    "unparseable_timestamp",
                    "error",
                    raw.notnull() & (raw.strip().length() > 0) & t[col].isnull(),
                    "unparseable date-times: text that cannot be read as a date-time",
                    f"write {name}.{col} as 'YYYY-MM-DD HH:MM:SS' (optionally with '+01:00' or "
                    "'Z'), e.g. '2024-03-01 14:05:00'; fix or remove the rows shown.",
                    show,
                )
            )
        if not spec.nullable and not (name == "events" and col == "user_id"):
            what = (
                "part of the table's key, so it"
                if col in ctx.keys
                else "needed by the analyses and"
            )
            empty = t[col].isnull()
            if col in plan.text_timestamps:  # text that is not a date-time is reported above
                raw = t[f"_crm_raw_{col}"]
                empty = empty & (raw.isnull() | (raw.strip().length() == 0))
            checks.append(
                _RowCheck(
                    f"null_{col}",
                    col,
                    "null_key" if spec.kind == "id" else "null_value",
                    "error",
                    empty,
                    f"empty values; the column is {what} must be filled in every row",
                    f"fill {name}.{col} in every row, or remove those rows before loading.",
                    [c for c in t.columns if not c.startswith("_crm_raw_")][:6],
                )
            )
    checks += ancient_checks(ctx, key_cols)
    for col, spec in ctx.contract.items():
        if col in ok and spec.kind in ("number", "integer") and t[col].type().is_numeric():
            v = t[col]
            bad = v.abs() > MAX_ABS_AMOUNT
            if v.type().is_floating():
                bad = v.isnan() | v.isinf() | bad
            checks.append(
                _RowCheck(
                    f"absurd_{col}",
                    col,
                    "absurd_number",
                    "error",
                    bad,
                    "values that are not finite numbers (inf, NaN) or beyond "
                    f"±{MAX_ABS_AMOUNT:.0e} in absolute value",
                    f"store {name}.{col} as ordinary finite amounts; rows like these usually come "
                    "from a division by zero, an overflow or a placeholder such as 1e308; fix or "
                    "remove the rows shown.",
                    [c for c in dict.fromkeys([*key_cols, col]) if c in t.columns],
                )
            )
    if name == "events" and "user_id" in ok:
        checks.append(
            _RowCheck(
                "null_user_id",
                "user_id",
                "null_user_id",
                "warning",
                t.user_id.isnull(),
                "events without a user_id; they are dropped from the loaded events",
                "export the user_id with every event (anonymous events cannot enter journeys).",
                [c for c in ("user_id", "event", "ts") if c in t.columns],
            )
        )
    if name == "orders":
        for col, what in (("revenue", "revenue"), ("quantity", "quantity")):
            if col in ok:
                checks.append(
                    _RowCheck(
                        f"neg_{col}",
                        col,
                        f"negative_{col}",
                        "warning",
                        t[col] < 0,
                        f"negative {what} (refunds or returns?); the rows are kept, so revenue "
                        "sums are net of them",
                        f"if these are refunds, keep them; if not, correct {name}.{col} at the "
                        "source. To analyse gross revenue, filter revenue >= 0.",
                        [c for c in ("order_id", "user_id", "ts", col) if c in t.columns],
                    )
                )
    if name == "messages":
        show = [c for c in ("message_id", "channel", "sent_at", "opened_at", "clicked_at")]
        show = [c for c in show if c in t.columns]
        if "channel" in ok:
            allowed = ", ".join(repr(c) for c in ctx.channels)
            checks.append(
                _RowCheck(
                    "bad_channel",
                    "channel",
                    "unknown_channel",
                    "error",
                    t.channel.notnull() & ~t.channel.isin(list(ctx.channels)),
                    f"channel values outside {allowed}",
                    f"map your channel names onto {allowed} (lower case) before loading, "
                    "e.g. 'E-Mail' -> 'email', 'Push notification' -> 'push'.",
                    show,
                )
            )
        if {"opened_at", "sent_at"} <= ok:
            checks.append(
                _RowCheck(
                    "open_before_sent",
                    "opened_at",
                    "opened_before_sent",
                    "warning",
                    t.opened_at < t.sent_at,
                    "messages opened before they were sent (clock or time-zone mix-up?); the "
                    "rows are kept",
                    "check that sent_at and opened_at are in the same time zone (schema.yaml "
                    "'timezone', or offsets in the values).",
                    show,
                )
            )
        if {"opened_at", "clicked_at"} <= ok:
            checks.append(
                _RowCheck(
                    "click_no_open",
                    "clicked_at",
                    "clicked_without_open",
                    "warning",
                    t.clicked_at.notnull() & t.opened_at.isnull(),
                    "messages clicked without an open (often blocked open-tracking pixels); "
                    "the rows are kept, open rates may be understated",
                    "nothing to fix if your e-mail tool cannot track opens; otherwise export "
                    "opened_at for these messages.",
                    show,
                )
            )
    return checks


def _table_queries(
    ctx: _TableContext, backend: str = "", guess: dict | None = None
) -> tuple[list[_RowCheck], list[ibis.Table]]:
    """The checks of one table and its one-row aggregate tables (columns ``<table>__<key>``)."""
    t, name, ok = ctx.stage, ctx.name, ctx.plan.checkable
    p = f"{name}__"
    checks = _row_checks(ctx)
    metrics: dict[str, ir.Scalar] = {"n": t.count()}
    for ch in checks:
        metrics[ch.key] = ch.cond.cast("int64").sum()
    single_key = ctx.keys[0] if len(ctx.keys) == 1 and ctx.keys[0] in ok else None
    # key counts, user-id ranges and date ends; validate_scale.complete adds the rest
    metrics.update(validate_scale.first_metrics(ctx, backend, single_key))
    metrics.update(validate_scale.guessed_metrics(ctx, backend, single_key, guess or {}))
    parts = [t.aggregate(**{p + k: v for k, v in metrics.items()})]
    if name == "events" and {"user_id", "ts", "event"} <= ok:
        # one GROUP BY (user_id, ts) over all rows answers two checks: tied timestamps
        # (two event names in a group <=> min(event) != max(event), far cheaper than a
        # count distinct) and whether any two rows can be exact duplicates at all (only
        # rows of one group can be; the full DISTINCT runs later only when a group has
        # several rows: "shared")
        g = t.group_by(["user_id", "ts"]).aggregate(
            rows=t.count(), lo=t.event.min(), hi=t.event.max()
        )
        keyed = g.user_id.notnull() & g.ts.notnull()
        parts.append(
            g.aggregate(
                **{
                    p + "tied": ibis.ifelse(keyed & (g.lo != g.hi), g.rows, 0).sum(),
                    p + "with_user": ibis.ifelse(keyed, g.rows, 0).sum(),
                    p + "shared": (g.rows > 1).cast("int64").sum(),
                }
            )
        )
    elif name == "events":
        parts.append(t.distinct().count().name(p + "distinct_rows").as_table())
    if len(ctx.keys) > 1 and set(ctx.keys) <= ok:
        per_key = t.group_by(list(ctx.keys)).aggregate(
            k_n=t.count(), k_var=t.variant.nunique() if "variant" in ok else ibis.literal(1)
        )
        parts.append(
            per_key.aggregate(
                **{
                    p + "dup_keys": (per_key.k_n > 1).cast("int64").sum(),
                    p + "dup_rows": ibis.ifelse(per_key.k_n > 1, per_key.k_n, 0).sum(),
                    p + "conflicting": (per_key.k_var > 1).cast("int64").sum(),
                }
            )
        )
    if (
        ctx.users_ids is not None
        and "user_id" in ok
        and validate_scale.anti_join_in_first(ctx, backend)
    ):
        orphans = t.filter(t.user_id.notnull()).anti_join(ctx.users_ids, "user_id")
        parts.append(orphans.count().name(p + "unknown_users").as_table())
    return checks, parts


def _check_table(
    report: DataQualityReport, ctx: _TableContext, checks: list[_RowCheck], row: dict
) -> None:
    """Turn one table's counts into findings (example rows fetched only for failed checks)."""
    t, name, ok = ctx.stage, ctx.name, ctx.plan.checkable
    single_key = ctx.keys[0] if len(ctx.keys) == 1 and ctx.keys[0] in ok else None
    n = _n(row["n"])
    cleaning: dict = {}

    for ch in checks:
        count = _n(row[ch.key])
        if not count:
            continue
        severity = ch.severity
        message = ch.message
        if ch.key == "null_user_id":
            if count > MAX_NULL_USER_EVENT_SHARE * n:
                severity = "error"
                message = (
                    f"{count / n:.1%} of events have no user_id (more than "
                    f"{MAX_NULL_USER_EVENT_SHARE:.0%}: probably the wrong column is mapped)"
                )
            else:
                cleaning.setdefault("drop_null", []).append("user_id")
        report.findings.append(
            Finding(
                table=name,
                column=ch.column,
                check=ch.check,
                severity=severity,
                count=count,
                message=message,
                fix=ch.fix,
                examples=_examples(_show(t.filter(ch.cond), ch.show)),
            )
        )

    for ch in checks:  # ancient dates: excluded (row times) or treated as missing
        if ch.check == "ancient_dates" and _n(row[ch.key]):
            ts_rule(cleaning, name, ch.column, lo=EARLIEST_PLAUSIBLE)

    extra = dict(row)
    for col in timestamp_columns(ctx):
        future_dates(report, ctx, col, row, cleaning)

    key_cols = [c for c in ctx.keys if c in t.columns]
    if single_key:
        dup = _n(row["key_n"]) - _n(row["key_distinct"])
        if dup:
            dups = t.group_by(single_key).aggregate(rows=t.count()).filter(lambda g: g.rows > 1)
            report.findings.append(
                Finding(
                    table=name,
                    column=single_key,
                    check="duplicate_key",
                    severity="error",
                    count=dup,
                    message=f"{single_key} must be unique, but some values occur more than once "
                    "(count = extra rows)",
                    fix=f"keep one row per {single_key} (remove duplicated exports or joins "
                    "that repeat rows) before loading.",
                    examples=_examples(dups),
                )
            )
    if _n(extra.get("dup_keys")):
        conflicting = _n(extra.get("conflicting"))
        per_key = t.group_by(key_cols).aggregate(
            rows=t.count(), variants=t.variant.nunique() if "variant" in ok else ibis.literal(1)
        )
        report.findings.append(
            Finding(
                table=name,
                column=", ".join(key_cols),
                check="duplicate_key",
                # a warning: an impression-level log has many rows per user by design, and
                # the experiment readout summarizes them (crm_helpers.experiments.core)
                severity="warning",
                count=_n(extra.get("dup_rows")),
                message=f"({', '.join(key_cols)}) is not unique: "
                f"{_n(extra['dup_keys']):,} user(s) are assigned more than once"
                + (
                    f", {conflicting:,} of them to different variants of one experiment"
                    if conflicting
                    else ""
                )
                + " (e.g. an impression-level log, one row per impression); the experiment "
                "readout counts each user once, from their earliest assigned_at, and excludes "
                "users in several variants",
                fix="nothing, if the rows are impressions or repeated exports; each user must "
                "be in exactly one variant per experiment, so users exposed to several variants "
                "are left out of the analysis.",
                examples=_examples(per_key.filter(per_key.rows > 1)),
            )
        )
    if name == "events":
        tied_finding(report, ctx, extra)
    if name == "events" and "shared" in extra:  # exact duplicates need a shared group
        shared = _n(extra["shared"])
        extra["distinct_rows"] = t.distinct().count().to_pyarrow().as_py() if shared else n
    if name == "events" and "distinct_rows" in extra:
        dup = n - _n(extra["distinct_rows"])
        if dup:
            cleaning["distinct"] = True
            cols = [c for c in t.columns if not c.startswith("_crm_raw_")]
            grouped = t.group_by(cols).aggregate(copies=t.count())
            report.findings.append(
                Finding(
                    table=name,
                    column=None,
                    check="duplicate_events",
                    severity="warning",
                    count=dup,
                    message="exact duplicate event rows (every column equal; count = extra "
                    "copies); one copy of each is kept in the loaded events",
                    fix="usually a tracking or export retry; nothing to do unless the share is "
                    "large, then fix the export.",
                    examples=_examples(
                        _show(grouped.filter(grouped.copies > 1), ["user_id", "event", "ts"])
                    ),
                )
            )
    if _n(extra.get("unknown_users")):
        orphans = t.filter(t.user_id.notnull()).anti_join(ctx.users_ids, "user_id")
        report.findings.append(
            Finding(
                table=name,
                column="user_id",
                check="unknown_user",
                severity="warning",
                count=_n(extra["unknown_users"]),
                message="rows whose user_id is not in the users table; the rows are kept, but "
                "analyses that join user attributes leave them out",
                fix="export users and "
                f"{name} from the same snapshot, or add the missing users to users.",
                examples=_examples(_show(orphans, [*key_cols, "user_id"])),
            )
        )
    if cleaning:
        report.cleaning[name] = cleaning
