"""The journey benchmark's rows on prepared arrays (issue #25): the kernel rows and their
numpy floors, each returning ``(transitions, paths[, {"timings": ...}])`` as the rows of
:mod:`bench_journeys` do (split from it to keep each file short; the semantics of every
row are in that module's docstring)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import funnel_impls as F

ANCHOR = "product_view"
DEPTH = 5


def prepared_arrays(data: Path):
    """The events as :class:`~crm_helpers.store.arrays.EventArrays`, built with pyarrow and
    numpy (codes in name order, rows by ``(user, t, event)``): what the store provides."""
    import numpy as np
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from crm_helpers.store.arrays import EventArrays

    tbl = pq.read_table(F.events_path(data), columns=["user_id", "event", "ts"])
    uids, ucode = np.unique(tbl.column("user_id").to_numpy(), return_inverse=True)
    t = tbl.column("ts").cast("int64").to_numpy()
    enc = pc.dictionary_encode(tbl.column("event")).combine_chunks()
    names = enc.dictionary.to_pylist()
    order = np.argsort(np.array(names, dtype=object))
    rank = np.empty(len(names), np.int32)
    rank[order] = np.arange(len(names))
    code = rank[enc.indices.to_numpy()]
    o = np.lexsort((code, t, ucode))
    user = ucode[o].astype(np.int32)
    offsets = np.concatenate([[0], np.cumsum(np.bincount(user, minlength=len(uids)))])
    return EventArrays(
        user=user,
        t=t[o].astype(np.int64),
        event=code[o].astype(np.int32),
        offsets=offsets.astype(np.int64),
        user_ids=uids,
        event_names=tuple(names[i] for i in order),
    )


def _decoded(names, edges, paths):
    """Code-level counts -> the ``({(a, b): n}, Counter({path: n}))`` all rows return;
    ``paths`` is ``(codes, counts)``: an int matrix (-1 past the journey's end) and the
    journeys per row, or None."""
    trans = {(names[a], names[b]): int(n) for a, b, n in edges}
    if paths is None:
        return trans, None
    out = Counter()
    codes, counts = paths
    for row, n in zip(codes.tolist(), counts.tolist(), strict=True):
        out[tuple(names[c] for c in row if c >= 0)] += n
    return trans, out


def _arrays_of(x):
    """The prepared arrays: ``x`` itself, or built from the data directory ``x``."""
    return prepared_arrays(x) if isinstance(x, str | Path) else x


def journeys_kernel(arrays, timings: bool = False):
    """:mod:`crm_helpers.journeys.kernel` from the prepared arrays: journeys, counts, paths."""

    from crm_helpers.journeys import kernel as K
    from crm_helpers.journeys.core import JourneySpec

    arrays = _arrays_of(arrays)
    kj = K.build(arrays, JourneySpec())
    e = K.edge_counts(kj, timings=timings)
    p = K.path_counts(kj, kj.vocab.index(ANCHOR), DEPTH, "after")
    edges = zip(e["code"].tolist(), e["nxt"].tolist(), e["count"].tolist(), strict=True)
    out = _decoded(kj.vocab, edges, (p.codes, p.journeys))
    return (*out, _timings_of(kj.vocab, e)) if timings else out


def journeys_kernel_dfg(arrays, timings: bool = False):
    """The kernel's journeys and directly-follows counts alone (against ``floor_dfg``), with
    the median / p90 transition times when ``timings`` (against ``floor_dfg_times``)."""
    from crm_helpers.journeys import kernel as K
    from crm_helpers.journeys.core import JourneySpec

    kj = K.build(_arrays_of(arrays), JourneySpec())
    e = K.edge_counts(kj, timings=timings)
    edges = zip(e["code"].tolist(), e["nxt"].tolist(), e["count"].tolist(), strict=True)
    out = _decoded(kj.vocab, edges, None)
    return (*out, _timings_of(kj.vocab, e)) if timings else out


def _timings_of(names, e) -> dict:
    """``{"timings": [[a, b, median_us, p90_us], ...]}`` of an edge-count dict (rounded to
    a thousandth of a microsecond: the floor and the kernel interpolate alike)."""
    rows = zip(e["code"].tolist(), e["nxt"].tolist(), e["median_us"], e["p90_us"], strict=True)
    return {
        "timings": sorted(
            [names[a], names[b], round(float(m), 3), round(float(p), 3)] for a, b, m, p in rows
        )
    }


def _floor_pairs(arrays):
    import numpy as np

    k = len(arrays.event_names)
    ev = arrays.event
    pair = ev[:-1] * k + ev[1:]
    pair[arrays.offsets[1:-1] - 1] = k * k  # across users: counted in a dropped bin
    cnt = np.bincount(pair, minlength=k * k + 1)[: k * k]
    cells = np.flatnonzero(cnt)
    return k, zip((cells // k).tolist(), (cells % k).tolist(), cnt[cells].tolist(), strict=True)


def journeys_floor(arrays):
    """The minimal numpy on the prepared arrays: pair counts and the first-anchor shifts."""

    arrays = _arrays_of(arrays)
    _, edges = _floor_pairs(arrays)
    return _decoded(arrays.event_names, edges, _floor_paths(arrays))


def _floor_paths(arrays):
    """The depth-5 paths after each user's first anchor: ``(codes, counts)``."""
    import numpy as np

    k = len(arrays.event_names)
    ev, user = arrays.event, arrays.user
    rows = np.flatnonzero(ev == arrays.event_code(ANCHOR))
    ua = user[rows]
    rows = rows[np.r_[True, ua[1:] != ua[:-1]]]  # first anchor per user
    n = ev.shape[0]
    steps = np.full((rows.size, DEPTH + 1), -1, np.int64)
    steps[:, 0] = ev[rows]
    alive = np.ones(rows.size, bool)
    for j in range(1, DEPTH + 1):
        pos = np.minimum(rows + j, n - 1)
        alive &= (rows + j < n) & (user[pos] == user[rows])
        steps[:, j] = np.where(alive, ev[pos], -1)
    w = (k + 1) ** np.arange(DEPTH + 1, dtype=np.int64)
    keys, counts = np.unique((steps + 1) @ w, return_counts=True)
    uniq = (keys[:, None] // w) % (k + 1) - 1
    return uniq, counts


def journeys_floor_dfg(arrays):
    """The directly-follows counts alone (the issue's floor)."""
    arrays = _arrays_of(arrays)
    _, edges = _floor_pairs(arrays)
    return _decoded(arrays.event_names, edges, None)


def _floor_times(arrays):
    """The directly-follows counts with the median and p90 of ``t_next - t`` per transition
    (linear interpolation, as ``numpy.quantile``): the minimal numpy for that output.

    Pair codes within users (across users: a code ``k * k`` that sorts last), one stable
    argsort of them as 16-bit keys (numpy's radix sort: O(n)), the time gaps gathered in
    that order (grouped by transition), then per transition one ``np.partition`` at the
    four ranks the two quantiles read: a loop over the ~``k * k`` transitions, not the rows.
    (A sort of the gaps alone costs more at 10M events than these steps together.) Needs
    ``k * k < 65535`` event-code pairs (10 names here)."""
    import numpy as np

    k = len(arrays.event_names)
    assert k * k < np.iinfo(np.uint16).max, "the 16-bit radix floor needs few event names"
    ev, t = arrays.event, arrays.t
    pair = (ev[:-1] * k + ev[1:]).astype(np.uint16)
    pair[arrays.offsets[1:-1] - 1] = k * k
    cnt = np.bincount(pair, minlength=k * k + 1)[: k * k]
    cells = np.flatnonzero(cnt)
    n = cnt[cells]
    o = np.argsort(pair, kind="stable")[: int(n.sum())]
    d = (t[1:] - t[:-1])[o]
    med, p90 = np.empty(cells.size), np.empty(cells.size)
    start = 0
    for g, size in enumerate(n.tolist()):
        qs = []
        for q in (0.5, 0.9):
            lo = int(np.floor(q * (size - 1)))
            qs.append((q * (size - 1), lo, min(lo + 1, size - 1)))
        part = np.partition(d[start : start + size], sorted({r for _, a, b in qs for r in (a, b)}))
        (pm, am, bm), (pp, ap, bp) = qs
        med[g] = part[am] + (part[bm] - float(part[am])) * (pm - am)
        p90[g] = part[ap] + (part[bp] - float(part[ap])) * (pp - ap)
        start += size
    e = {"code": cells // k, "nxt": cells % k, "count": n, "median_us": med, "p90_us": p90}
    edges = zip((cells // k).tolist(), (cells % k).tolist(), n.tolist(), strict=True)
    return edges, _timings_of(arrays.event_names, e)


def journeys_floor_dfg_times(arrays):
    """The directly-follows counts with median / p90 transition times (:func:`_floor_times`)."""
    arrays = _arrays_of(arrays)
    edges, timings = _floor_times(arrays)
    return (*_decoded(arrays.event_names, edges, None), timings)


def journeys_floor_times(arrays):
    """:func:`journeys_floor` with the transition times (the floor of ``kernel_times``)."""
    arrays = _arrays_of(arrays)
    edges, timings = _floor_times(arrays)
    return (*_decoded(arrays.event_names, edges, _floor_paths(arrays)), timings)
