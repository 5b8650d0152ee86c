"""Metrics a notebook records for its report: numbers, small tables and a summary.

Inside ``crm run`` the runner sets ``$CRM_METRICS_PATH`` for the kernel and every call
rewrites that JSON file, so ``metrics.json`` always holds what the notebook recorded so far.
Interactively (no environment variable) the values are only kept in memory
(:func:`current`).

>>> record("rows.events", 1234)
>>> summary(["1,234 events from 100 users."])
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ENV_VAR = "CRM_METRICS_PATH"

_STATE: dict[str, Any] = {"metrics": {}, "tables": {}, "summary": []}


def to_jsonable(value: Any) -> Any:
    """Convert numpy/pandas/datetime values (recursively) to plain JSON types.

    Floats that are NaN or infinite become ``None``; timestamps become ISO strings.
    """
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value, key=str) if isinstance(value, set | frozenset) else value
        return [to_jsonable(v) for v in items]
    if isinstance(value, pd.DataFrame):
        return table_records(value)
    if isinstance(value, pd.Series):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return [to_jsonable(v) for v in value.tolist()]
    if value is None or value is pd.NaT:
        return None
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        f = float(value)
        return None if math.isnan(f) or math.isinf(f) else f
    if isinstance(value, pd.Timestamp | _dt.datetime | _dt.date):
        return value.isoformat()
    if isinstance(value, pd.Timedelta | _dt.timedelta):
        return pd.Timedelta(value).total_seconds()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, str):
        return value
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return str(value)


def table_records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """A small frame as a list of JSON-ready row dicts (index dropped)."""
    return [to_jsonable(row) for row in df.reset_index(drop=True).to_dict(orient="records")]


def _flush() -> None:
    path = os.environ.get(ENV_VAR)
    if not path:
        return
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(json.dumps(current(), indent=2, sort_keys=True, ensure_ascii=False))
    os.replace(tmp, target)


def record(key: str, value: Any) -> Any:
    """Record one metric (``"rows.events"`` -> 1234) and return the value unchanged."""
    _STATE["metrics"][str(key)] = to_jsonable(value)
    _flush()
    return value


def record_table(key: str, df: pd.DataFrame) -> pd.DataFrame:
    """Record a small table (list of row dicts) and return it unchanged."""
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"record_table expects a pandas DataFrame, got {type(df).__name__}")
    _STATE["tables"][str(key)] = table_records(df)
    _flush()
    return df


def summary(text_or_list: str | list[str]) -> list[str]:
    """Record the report's plain-language summary (one string or a list of bullet strings)."""
    lines = [text_or_list] if isinstance(text_or_list, str) else [str(t) for t in text_or_list]
    _STATE["summary"] = lines
    _flush()
    return lines


def set_provenance(provenance: dict) -> None:
    """Record the provenance block (called by :func:`crm_helpers.report.provenance.header`)."""
    _STATE["provenance"] = to_jsonable(provenance)
    _flush()


def current() -> dict[str, Any]:
    """Everything recorded so far: ``{"metrics", "tables", "summary"[, "provenance"]}``.

    ``provenance.paths`` is :func:`crm_helpers.store.paths.paths_used` at the time of the
    call (which analysis computed on the sorted-array kernels, which on Ibis), when any
    analysis recorded one: the last record of a notebook (its summary) carries them all.
    """
    from crm_helpers.store.paths import paths_used

    out = json.loads(json.dumps(_STATE, sort_keys=True, default=str))
    paths = paths_used()
    if paths and "provenance" in out:
        out["provenance"]["paths"] = paths
    return out


def reset() -> None:
    """Forget everything recorded (tests, or a fresh interactive run), paths included."""
    from crm_helpers.store.paths import reset_paths

    reset_paths()
    _STATE.clear()
    _STATE.update({"metrics": {}, "tables": {}, "summary": []})
