"""The prepared event store around a report run: built before the kernels, said in the report.

``crm run`` and ``crm run-all`` call :func:`prepare_store` in the parent process before any
kernel starts (``run-all`` once for all its reports), so reports running side by side share
one store and no kernel builds it; the kernel finds it through ``$CRM_STORE_DIR``
(:data:`crm_helpers.store.STORE_ENV`) and still checks it is fresh before use. ``run.json``
keeps :func:`prepare_store`'s record under ``store`` (directory, manifest hash,
``fresh``/``built`` and why) and the kernel's :func:`crm_helpers.store.paths.paths_used`
(which analysis computed on the sorted-array kernels and which on Ibis) under
``computed_on``; :func:`computed_on_text` is the line the report's footer shows.
"""

from __future__ import annotations

import html
import os
from pathlib import Path
from typing import Any

from crm_helpers import config

__all__ = ["computed_on_text", "prepare_store"]

#: ``CRM_PREPARE_STORE=0`` (or ``off``, ``no``, ``false``): runs do not prepare the store
#: (the kernels still build it on first use).
OFF_ENV = "CRM_PREPARE_STORE"
_OFF = ("0", "off", "no", "false")
_LABEL = {"kernel": "kernel path (sorted arrays)", "ibis": "Ibis path"}


def prepare_store(
    data_dir: str | Path | None, engine: str | None, load_time: str | None = None
) -> dict[str, Any] | None:
    """Make the store of ``data_dir`` fresh (building it if need be); its run record.

    None when the store does not apply (an engine other than DuckDB, no events table) or
    ``$CRM_PREPARE_STORE`` is ``0``/``off``. A
    failure (the data do not load, the cache is not writable) is recorded as
    ``{"status": "failed", "error": ...}`` and the run goes on: the kernel takes the Ibis
    path or reports the data's error itself.

    Parameters
    ----------
    data_dir
        The run's data folder (None: :func:`crm_helpers.config.data_dir`).
    engine
        The run's engine parameter.
    load_time
        The run's ``$CRM_LOAD_TIME`` (ISO 8601), so the validation's cleaning, part of the
        store's source key, is the kernel's.
    """
    if engine not in (None, "", "duckdb") or os.environ.get(OFF_ENV, "").lower() in _OFF:
        return None
    from crm_helpers.store import prepare_data_dir

    old = os.environ.get(config.LOAD_TIME_ENV)
    try:
        if load_time:
            os.environ[config.LOAD_TIME_ENV] = load_time
        prepared = prepare_data_dir(data_dir, "duckdb")
    except Exception as exc:  # noqa: BLE001 - the run goes on without a prepared store
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return {"status": "failed", "error": f"{type(exc).__name__}: {first}"[:500]}
    finally:
        if old is None:
            os.environ.pop(config.LOAD_TIME_ENV, None)
        else:
            os.environ[config.LOAD_TIME_ENV] = old
    return prepared.record() if prepared is not None else None


def computed_on_text(paths: dict[str, list[str]] | None, store: dict[str, Any] | None) -> str:
    """The footer's line (HTML): which path computed each analysis, and the store used.

    >>> computed_on_text({"funnel": ["kernel"], "journeys": ["ibis"]}, None)
    'Computed on: funnel: kernel path (sorted arrays); journeys: Ibis path.'
    """
    if paths:
        parts = [
            f"{html.escape(a)}: {' and '.join(_LABEL.get(p, html.escape(p)) for p in ps)}"
            for a, ps in sorted(paths.items())
        ]
        text = "Computed on: " + "; ".join(parts) + "."
    else:
        text = "Computed on: Ibis path (no analysis recorded the kernel path)."
    if store and store.get("manifest_sha256"):
        how = "built for this run" if store.get("status") == "built" else "reused"
        if "manifest_sha256_after" in store:
            sha = store["manifest_sha256_after"] or "removed"
            how += f"; rebuilt during the run as <code>{html.escape(str(sha))}</code>"
        sha0 = html.escape(str(store["manifest_sha256"]))
        text += f" Event store <code>{sha0}</code> ({how})."
    return text
