"""Audiences for CRM tools: the one writer every analysis uses to export a list of users.

:func:`export_audience` writes an Ibis table or a pandas frame to Parquet or CSV, atomically
(the file appears complete or not at all: written beside the target, then renamed) and never
under the data directory (input data are read-only). On DuckDB the engine writes the file
itself (``COPY ... TO``, streamed); other engines' tables are fetched once as Arrow.
Funnels (drop-off audiences), segments and lookalikes export through it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import ibis
import pandas as pd

from crm_helpers import config

__all__ = ["export_audience"]


def _backend_name(t: ibis.Table) -> str | None:
    """Name of the backend ``t`` runs on (memtables: Ibis' default backend), or None."""
    try:
        return t._find_backend(use_default=True).name
    except Exception:  # noqa: BLE001 - several backends or none
        return None


def _protected_dirs() -> list[Path]:
    dirs = {config.data_dir(), config.DEFAULT_DATA_DIR.resolve(), (config.ROOT / "data").resolve()}
    return sorted(dirs)


def export_audience(
    audience: ibis.Table | pd.DataFrame,
    path: str | Path,
    fmt: Literal["parquet", "csv"] = "parquet",
) -> Path:
    """Write an audience (e.g. :func:`dropoff_audience`) to Parquet or CSV.

    Parameters
    ----------
    audience : ibis.Table or pandas.DataFrame
        The rows to write. On DuckDB the engine writes the file itself (``COPY ... TO``:
        streamed, never held in Python); other engines' tables are fetched once as Arrow
        and written with pyarrow.
    path : str or Path
        Output file. Refused (``PermissionError``) under the data directory
        (``crm_helpers.config.data_dir()``, the default data dir, or ``<repo>/data``):
        input data are read-only.
    fmt : {"parquet", "csv"}, default "parquet"

    Returns
    -------
    Path
        The absolute path written. The file appears complete or not at all (written
        beside it, then renamed), so a scheduled export never leaves half an audience.
    """
    import os

    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    if fmt not in ("parquet", "csv"):
        raise ValueError(f"fmt must be 'parquet' or 'csv', got {fmt!r}")
    out = Path(path).expanduser().resolve()
    for d in _protected_dirs():
        if out == d or d in out.parents:
            raise PermissionError(
                f"refusing to write {out}: it is under the data directory {d}, which is "
                "read-only input. Write audiences under reports/ or another folder."
            )
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        if isinstance(audience, ibis.Table) and _backend_name(audience) == "duckdb":
            # COPY (query) TO file: the engine streams the rows to disk
            (audience.to_parquet if fmt == "parquet" else audience.to_csv)(tmp)
        else:
            if isinstance(audience, pd.DataFrame):
                table = pa.Table.from_pandas(audience, preserve_index=False)
            else:  # to_pyarrow_batches would stream, but ibis 12 + duckdb 2.0 break it
                table = audience.to_pyarrow()
            (pq.write_table if fmt == "parquet" else pacsv.write_csv)(table, tmp)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out
