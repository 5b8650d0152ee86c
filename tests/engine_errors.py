"""Real engine exceptions for tests of how the workbench reports them."""

from __future__ import annotations

import duckdb
import pytest


def real_out_of_memory() -> duckdb.OutOfMemoryException:
    """DuckDB's own out-of-memory exception, raised for real on a 1 MB memory limit."""
    con = duckdb.connect()
    con.execute("SET memory_limit = '1MB'")
    try:
        con.execute("SELECT DISTINCT range::VARCHAR || 'x' FROM range(3000000)").fetchall()
    except duckdb.OutOfMemoryException as exc:
        return exc
    finally:
        con.close()
    pytest.fail("DuckDB did not run out of memory at 1 MB")
