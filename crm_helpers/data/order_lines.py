"""Orders from a file of order lines: one order per order id, aggregated in the engine.

The rule is :func:`aggregate_order_lines`'s (``data/README.md``, "Order lines");
:func:`crm_helpers.data.load` applies it when ``schema.yaml`` names ``order_lines``.
:mod:`crm_helpers.data` re-exports :func:`aggregate_order_lines`.
"""

from __future__ import annotations

from pathlib import Path

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir

from crm_helpers.data.findings import Finding
from crm_helpers.schema import Schema

__all__ = ["aggregate_order_lines"]


def aggregate_order_lines(
    lines: ibis.Table, order_lines: dict[str, str] | Schema
) -> tuple[ibis.Table, ir.IntegerScalar]:
    """One order per order id from a table of order lines (lazy, in the engine).

    The rule (``data/README.md``, "Order lines"):

    * every order id is one order: ``revenue`` = sum of quantity x unit price over its
      lines, ``quantity`` = sum of quantities, ``ts`` = its earliest line's time (lines of
      one invoice normally share it), ``user_id`` = its customer, ``lines`` = line count;
    * cancellations and refunds are kept as they are exported: a cancellation invoice
      (negative quantities, e.g. a ``C`` prefix in Online Retail) becomes an order with
      negative revenue, which validation reports as a refund and revenue sums net out;
    * lines without a customer (``user_id`` empty: guest or unattributed sales) cannot be
      anyone's order: they are set aside, and counted (the second value) for a warning.

    Parameters
    ----------
    lines
        The orders file as read, with ``user_id`` and ``ts`` already renamed to the contract
        (and ``order_id``, unless ``order_lines`` names its column).
    order_lines
        ``{quantity: <column>, unit_price: <column>[, order_id: <column>]}``, or a
        :class:`~crm_helpers.schema.Schema` holding it.

    Returns
    -------
    (ibis.Table, ibis integer scalar)
        ``order_id, user_id, ts, revenue, quantity, lines``, one row per order id with a
        customer; and the number of lines set aside (an unexecuted expression).

    Raises
    ------
    KeyError
        A named line column is not in the table.
    """
    spec = dict(order_lines.order_lines if isinstance(order_lines, Schema) else order_lines)
    oid, qty, price = spec.get("order_id", "order_id"), spec["quantity"], spec["unit_price"]
    missing = [c for c in (oid, qty, price, "user_id", "ts") if c not in lines.columns]
    if missing:
        raise KeyError(missing)
    aside = lines.filter(lines.user_id.isnull()).count()
    kept = lines.filter(lines.user_id.notnull())
    amount = kept[qty].cast(dt.float64) * kept[price].cast(dt.float64)
    orders = kept.group_by(order_id=kept[oid]).aggregate(
        user_id=kept.user_id.min(),
        ts=kept.ts.min(),
        revenue=amount.sum(),
        quantity=kept[qty].sum().cast(dt.int64),
        lines=kept.count(),
    )
    return orders, aside


def _order_lines_finding(path: Path, exc: KeyError, order_lines: dict[str, str]) -> Finding:
    return Finding(
        table="orders",
        column=None,
        check="missing_column",
        severity="error",
        count=0,
        message=f"schema.yaml says {path.name} holds order lines ({dict(order_lines)}), but "
        f"column(s) {exc.args[0]} are not in the file (after the columns mapping)",
        fix="name the file's order id, quantity and unit price columns under order_lines, "
        "and map its customer and time columns under columns: {orders: {user_id: ..., ts: ...}}.",
    )
