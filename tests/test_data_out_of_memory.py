"""Data the engine runs out of memory on are not called an invalid file (scale curve, 100M events).

At 100M events the validated load ran out of DuckDB's default memory limit, and the finding
told the user to "check that the file is a valid Parquet or CSV file": the file was fine.
The finding now names the memory limit and the two settings that help. The exception is
DuckDB's own, raised for real on a tiny limit.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from crm_helpers.data.sources import _engine_error
from tests.engine_errors import real_out_of_memory


def test_out_of_memory_names_the_limit_not_the_file():
    f = _engine_error("*", Path("/data/crm"), real_out_of_memory(), "checking the data in")
    assert f.severity == "error" and f.check == "unreadable"
    assert "ran out of the engine's memory" in f.message and "/data/crm" in f.message
    assert "CRM_DUCKDB_MEMORY_LIMIT" in f.fix and "CRM_DUCKDB_TEMP_DIR" in f.fix
    assert "valid Parquet" not in f.fix


def test_other_engine_errors_keep_the_file_hint():
    exc = duckdb.InvalidInputException("Invalid Input Error: No magic bytes found at end of file")
    f = _engine_error("events", Path("/data/crm/events.parquet"), exc, "reading")
    assert "valid Parquet or CSV" in f.fix and "memory" not in f.message
