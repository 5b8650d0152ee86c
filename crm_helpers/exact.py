"""Sums of amounts that do not depend on the order the engine adds the rows in.

A parallel engine (DuckDB's threads, Spark's partitions) adds a float column in partial sums
whose order changes from run to run, and floating-point addition is not associative: the
same revenue summed twice came back as ``936.0`` and ``935.9999999999999`` (the campaign
report on the 5,000-user world), so a report's ``metrics.json`` was not reproducible, and a
customer's ``monetary`` could fall on either side of a tie that decides a score.

:func:`exact_sum` adds ``x`` rounded to ``scale`` decimals (default 6: a millionth of a
currency unit) as ``DECIMAL(38, scale)``, which every engine adds exactly, and returns the
total as ``float64``. The result is therefore the same on every run and every engine: the
correctly rounded sum of the rounded values. Amounts whose magnitude reaches ``10**(38 -
scale)`` overflow (an error); the contract refuses amounts beyond
``crm_helpers.data.validate.MAX_ABS_AMOUNT`` (1e12), so sums of squares of amounts over up to
10**8 rows fit.
"""

from __future__ import annotations

import ibis.expr.datatypes as dt
import ibis.expr.types as ir

__all__ = ["exact_sum"]


def exact_sum(x: ir.NumericValue, scale: int = 6) -> ir.FloatingScalar:
    """The sum of ``x`` (rounded to ``scale`` decimals), added exactly, as ``float64``.

    Parameters
    ----------
    x
        A numeric column expression (amounts: revenue, its square, ...).
    scale
        Decimals kept of each value before adding.

    Returns
    -------
    ibis.expr.types.FloatingScalar
        A reduction like ``x.sum()``: NULL when every value is NULL or there are no rows.

    >>> import ibis
    >>> t = ibis.memtable({"r": [0.1, 0.2, 0.3]})
    >>> float(t.aggregate(s=exact_sum(t.r)).to_pandas()["s"][0])
    0.6
    """
    return x.cast(dt.Decimal(38, scale)).sum().cast("float64")
