"""The prepared event store and the sorted-array layout the embedded kernels read.

:mod:`crm_helpers.store.arrays` defines :class:`EventArrays`, the in-memory layout (events
sorted by user and time, users and event names coded to integers, times as int64 epoch
microseconds). The store on disk (built once per data set, reused while the source data are
unchanged) reads back into it.
"""

from crm_helpers.store.arrays import EventArrays, from_frame

__all__ = ["EventArrays", "from_frame"]
