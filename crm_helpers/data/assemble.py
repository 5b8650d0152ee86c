"""Assemble a load: required tables, validation, then the normalised and cleaned tables.

:func:`finish_load` is the last step shared by files (:func:`crm_helpers.data.load`) and
warehouse tables (:func:`crm_helpers.data.warehouse.load_warehouse`): it checks that the
required tables were found, runs the contract checks (:mod:`crm_helpers.data.validate`) on
the tables as read and renamed, raises :class:`~crm_helpers.data.findings.DataContractError`
on errors, and brings each table to contract types and naive UTC with validation's cleaning
applied (:mod:`crm_helpers.data.normalisation`), each as a view on the connection.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import replace

import ibis

from crm_helpers.data.crmdata import CRMData
from crm_helpers.data.findings import DataContractError, Finding
from crm_helpers.data.normalisation import apply_cleaning, normalise, plan_columns
from crm_helpers.data.sources import _engine_error
from crm_helpers.engine import temp_view
from crm_helpers.schema import TABLES

__all__ = ["finish_load"]


def finish_load(
    data: CRMData,
    errors: list[Finding],
    require: Iterable[str],
    validate: bool,
    *,
    missing: Callable[[str], Finding],
    skip: Iterable[str] = (),
    set_aside: ibis.Scalar | None = None,
) -> CRMData:
    """Check required tables, validate ``data.raw``, then normalise and clean into ``data.tables``.

    Shared by files (:func:`load`) and warehouse tables (:mod:`crm_helpers.data.warehouse`).
    ``missing(name)`` is the error for a required table that was not found; tables in
    ``skip`` already have an error (found but unreadable) and get no second one.
    ``set_aside`` counts order lines without a customer (:func:`aggregate_order_lines`),
    reported as a warning when validation finds no error.
    """
    con, schema, raw, aware = data.con, data.schema, data.raw, data.tz_aware
    backend = con.name
    required = list(dict.fromkeys(require))
    unknown = [n for n in required if n not in TABLES]
    if unknown:
        raise ValueError(f"require names unknown table(s) {unknown}; tables are {list(TABLES)}.")
    errors = errors + [missing(n) for n in required if n not in raw and n not in set(skip)]
    data.required = tuple(required)
    if validate:
        from crm_helpers.data.validate import validate as run_checks

        try:
            data.quality = run_checks(data)
        except DataContractError:
            raise
        except Exception as exc:  # an engine error while scanning a file
            if data.data_dir is not None:
                errors.append(_engine_error("*", data.data_dir, exc, "checking the data in"))
            else:  # warehouse tables: the engine's own message says what it could not do
                f = _engine_error("*", "the warehouse tables", exc, "checking the data in")
                errors.append(
                    replace(
                        f,
                        fix="check the tables' column types against the "
                        "contract (data/README.md) and the engine's message.",
                    )
                )
        errors += data.quality.errors
        if set_aside is not None and not errors:
            n_aside = int(set_aside.to_pyarrow().as_py() or 0)
            if n_aside:
                data.quality.findings.append(
                    Finding(
                        table="orders",
                        column="user_id",
                        check="order_lines_without_customer",
                        severity="warning",
                        count=n_aside,
                        message="order lines without a customer (guest or unattributed "
                        "sales) are set aside: they belong to no user's orders",
                        fix="nothing to do if these are guest sales; otherwise fill the "
                        "customer column in the export.",
                    )
                )
    if errors:
        raise DataContractError(errors) from None

    tables = {}
    for name, t in raw.items():
        plan = plan_columns(t, name, schema, aware[name], backend)
        clean = apply_cleaning(normalise(t, plan), data.quality.cleaning.get(name, {}))
        # a view, not a shared sub-query: see engine.temp_view
        tables[name] = (
            clean if clean is t else temp_view(con, f"crm_{name}_{uuid.uuid4().hex[:8]}_n", clean)
        )
    data.tables = tables
    return data
