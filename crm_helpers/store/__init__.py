"""The prepared event store and the sorted-array layout the embedded kernels read.

:mod:`crm_helpers.store.arrays` defines :class:`EventArrays`, the in-memory layout (events
sorted by user and time, users and event names coded to integers, times as int64 epoch
microseconds). The store on disk (:mod:`~crm_helpers.store.build`, built once per data set
in a cache outside the data, reused while the source data are unchanged:
:mod:`~crm_helpers.store.prepare`) reads back into it (:mod:`~crm_helpers.store.read`).

Analyses call :func:`event_arrays` ``(data, columns=())``: the arrays on the embedded engine
(DuckDB over files), None elsewhere (the Ibis path). It is a function of this package, not a
method of :class:`~crm_helpers.data.CRMData`, because the store sits above the data layer in
the import contract (``pyproject.toml``): the data package never imports the store.
"""

from crm_helpers.store.arrays import EventArrays, from_frame
from crm_helpers.store.prepare import (
    STORE_ENV,
    Prepared,
    StoreInsideData,
    collect_garbage,
    ensure_store,
    event_arrays,
    prepare_data_dir,
    store_path,
    supports_store,
    try_ensure_store,
)
from crm_helpers.store.read import load_arrays

__all__ = [
    "STORE_ENV",
    "EventArrays",
    "Prepared",
    "StoreInsideData",
    "collect_garbage",
    "ensure_store",
    "event_arrays",
    "from_frame",
    "prepare_data_dir",
    "load_arrays",
    "store_path",
    "supports_store",
    "try_ensure_store",
]
