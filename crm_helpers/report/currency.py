"""The currency of a report's money: the ``currency`` parameter, derived when left empty.

Notebooks that show money (tables, memos, axis titles) have a ``currency: str = ""``
parameter: a code (``EUR``, shown after the amount: ``1,234.50 EUR``) or a one-character
symbol (``€``, shown before it: ``€1,234.50``). Left empty, :func:`choose_currency` derives
it from the data, exactly so:

* the orders table has a ``currency`` column holding one value (nulls and blanks ignored):
  that value;
* it holds several values: none (amounts are summed as the data hold them; the derivation
  says which currencies were mixed);
* there is no such column (or no orders table): none; amounts are shown without a currency
  and axis titles say "in the data's currency".

A symbol is never guessed. The derivation is recorded with
:func:`crm_helpers.report.provenance.derive`, so the parameters table says what was done.
"""

from __future__ import annotations

from typing import Any

__all__ = ["MAX_LENGTH", "choose_currency", "check_currency", "money"]

#: A currency is a short code or symbol; longer text is refused as a parameter.
MAX_LENGTH = 8


def check_currency(value: Any, params: Any = None) -> str | None:
    """The parameter check (``None`` when fine, else what the value "must" be)."""
    if not isinstance(value, str) or value == "":
        return None
    v = value.strip()
    if (
        v != value
        or not v
        or len(v) > MAX_LENGTH
        or not all(c.isalpha() or c in "$€£¥₹₽₩¤" for c in v)
    ):
        return (
            f"be a currency code such as EUR or one symbol such as €, at most {MAX_LENGTH} "
            "letters, no spaces"
        )
    return None


def choose_currency(data) -> tuple[str, str]:
    """``(currency, how)`` from the data (see the module docstring).

    Parameters
    ----------
    data
        A :class:`~crm_helpers.data.CRMData`.

    Returns
    -------
    (str, str)
        The currency (``""``: none) and how it was derived, for ``provenance.derive``.
    """
    if not data.has("orders"):
        return "", "no orders table: amounts are shown without a currency"
    orders = data.orders
    if "currency" not in orders.columns:
        return "", (
            "the orders have no currency column: amounts are shown without a currency "
            "(pass -p currency EUR to name it)"
        )
    col = orders["currency"].cast("string").strip()
    values = (
        orders.filter(col.notnull() & (col != ""))
        .select(currency=col)
        .distinct()
        .limit(11)
        .to_pandas()["currency"]
        .tolist()
    )
    values = sorted(str(v) for v in values)
    if len(values) == 1 and check_currency(values[0]) is None:
        return values[0], "the one value of the orders' currency column"
    if not values:
        return "", "the orders' currency column is empty: amounts are shown without a currency"
    if len(values) == 1:
        return "", (
            f"the orders' currency column holds {values[0][:20]!r}, not a currency code: "
            "amounts are shown without a currency"
        )
    shown = ", ".join(v[:20] for v in values[:10]) + (", …" if len(values) > 10 else "")
    return "", (
        f"the orders mix currencies ({shown}): amounts are summed as they are and shown "
        "without a currency"
    )


def money(value: float, currency: str = "", digits: int = 0) -> str:
    """An amount in words' company: ``1,234 EUR``, ``€1,234``, ``1,234`` (no currency)."""
    from crm_helpers.report.tables import format_money

    return format_money(value, currency, digits=digits)
