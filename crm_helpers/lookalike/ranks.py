"""Exact rank statistics of a few rows among many, without sorting the many.

Every lookalike audit number and the audience selection depend on the order "score
descending, row ascending" (ties broken by row position, lower first). A full sort of 10M
scores costs ~1.5 s per model; the statistics the audit needs are far smaller:

- the exact positions of the ``H`` held-out seeds (a few thousand) in that order, with the
  number of candidates scoring strictly above and exactly equal to each of them;
- sums of a function of the score over the top ``k`` candidates, for a few ``k`` (the
  calibration deciles).

They are computed from **sufficient statistics** of one pass: each score is mapped to an
order-preserving unsigned integer key (float bits, sign-corrected, complemented so that a
smaller key is a higher score; ``-0.0`` counts as ``0.0``), the top :data:`BUCKET_BITS` bits
of the key name a bucket, and one ``bincount`` gives the candidates per bucket (and, with
weights, the sums per bucket). A position is then the candidates in the buckets before its
own plus an exact count inside its own bucket, where only the few candidates sharing a
bucket with an asked row are gathered and sorted. Results are exact (equal to a full stable
index sort, ties included; ``tests/lookalike/test_audit.py`` and
``tests/lookalike/test_rank_statistics.py``); NaN scores are not supported (the models give
none).
"""

from __future__ import annotations

import numpy as np

__all__ = ["BUCKET_BITS", "HeldPositions", "desc_keys", "group_sums", "held_positions", "top_rows"]

#: Buckets are the top this many bits of the key (2**20 buckets: 8 MB of counts, L3-sized).
BUCKET_BITS = 20


def desc_keys(values: np.ndarray) -> tuple[np.ndarray, int]:
    """Order-reversing unsigned keys of ``values``: a higher value gets a smaller key.

    float32 -> uint32, everything else -> float64 -> uint64. Equal values (``-0.0`` and
    ``0.0`` included) get equal keys. Returns ``(keys, bits)``.
    """
    v = np.asarray(values)
    if v.dtype != np.float32:
        v = v.astype(np.float64)
    if v.dtype == np.float32:
        ut, bits = np.uint32, 32
    else:
        ut, bits = np.uint64, 64
    u = (v + v.dtype.type(0)).view(ut)  # + 0 turns -0.0 into 0.0
    top = ut(bits - 1)
    # ascending map: flip every bit of negatives, the sign bit of the others; then complement
    flip = np.where(u >> top, ut(~ut(0)), ut(1) << top)
    np.bitwise_xor(u, flip, out=flip)
    np.invert(flip, out=flip)
    return flip, bits


def _buckets(keys: np.ndarray, bits: int) -> np.ndarray:
    return (keys >> keys.dtype.type(bits - BUCKET_BITS)).astype(np.intp)


def _bucket_sums(b: np.ndarray, excluded_rows: np.ndarray, weights=None) -> np.ndarray:
    """Per-bucket count (or weight sum) over all rows minus ``excluded_rows``."""
    size = 1 << BUCKET_BITS
    out = np.bincount(b, weights=weights, minlength=size)
    if len(excluded_rows):
        w = None if weights is None else weights[excluded_rows]
        out -= np.bincount(b[excluded_rows], weights=w, minlength=size)
    return out


def _excluded(candidates: np.ndarray | None, n: int) -> np.ndarray:
    if candidates is None:
        return np.empty(0, dtype=np.intp)
    return np.flatnonzero(~np.asarray(candidates, dtype=bool))


def _in_buckets(b, keys, wanted, candidates) -> tuple[np.ndarray, np.ndarray]:
    """Candidate rows whose bucket is in ``wanted``, and their keys, sorted by (key, row)."""
    mark = np.zeros(1 << BUCKET_BITS, dtype=bool)
    mark[wanted] = True
    hit = mark[b]
    if candidates is not None:
        hit &= candidates
    rows = np.flatnonzero(hit)
    k = keys[rows]
    if k.dtype == np.uint32 and len(keys) < 2**32:  # one sort of 64-bit (key, row) pairs
        pair = (k.astype(np.uint64) << np.uint64(32)) | rows.astype(np.uint64)
        pair.sort()
        return (pair & np.uint64(0xFFFFFFFF)).astype(np.intp), (pair >> np.uint64(32)).astype(
            np.uint32
        )
    order = np.lexsort((rows, k))
    return rows[order], k[order]


class HeldPositions:
    """Positions of asked rows among the candidates under (score desc, row asc).

    Attributes
    ----------
    n_candidates : int
    rank : ndarray of int64, shape (H,)
        0-based position of each asked row (in the order the rows were given).
    above : ndarray of int64, shape (H,)
        Candidates scoring strictly higher.
    equal : ndarray of int64, shape (H,)
        Candidates scoring exactly the same (the row itself included).
    """

    def __init__(self, n_candidates: int, rank, above, equal) -> None:
        self.n_candidates = n_candidates
        self.rank, self.above, self.equal = rank, above, equal


def held_positions(
    scores: np.ndarray, rows: np.ndarray, candidates: np.ndarray | None = None
) -> HeldPositions:
    """Exact :class:`HeldPositions` of ``rows`` (each a candidate) among ``candidates``.

    Parameters
    ----------
    scores : ndarray, shape (n,)
    rows : ndarray of int, shape (H,)
    candidates : ndarray of bool, shape (n,), optional
        Rows ranked (all when None).
    """
    rows = np.asarray(rows, dtype=np.intp)
    keys, bits = desc_keys(scores)
    b = _buckets(keys, bits)
    excl = _excluded(candidates, len(keys))
    counts = _bucket_sums(b, excl)
    before = np.cumsum(counts) - counts  # candidates in buckets strictly before
    n_cand = len(keys) - len(excl)
    if not len(rows):
        z = np.zeros(0, dtype=np.int64)
        return HeldPositions(n_cand, z, z, z)
    hb = b[rows]
    hk = keys[rows]
    cand = None if candidates is None else np.asarray(candidates, dtype=bool)
    srows, skeys = _in_buckets(b, keys, np.unique(hb), cand)
    # gathered candidates in buckets before each asked row's own bucket (all sorted first)
    start_key = hb.astype(keys.dtype) << keys.dtype.type(bits - BUCKET_BITS)
    first = np.searchsorted(skeys, start_key, side="left")
    lo = np.searchsorted(skeys, hk, side="left")
    hi = np.searchsorted(skeys, hk, side="right")
    above = before[hb] + (lo - first)
    equal = hi - lo
    rank = above.copy()
    tied = np.flatnonzero(equal > 1)
    for j in tied:  # rare (equal scores): count the tied rows that come first
        rank[j] += int(np.searchsorted(srows[lo[j] : hi[j]], rows[j], side="left"))
    return HeldPositions(n_cand, rank.astype(np.int64), above.astype(np.int64), equal)


def group_sums(
    scores: np.ndarray,
    edges: np.ndarray,
    weights: list[np.ndarray],
    candidates: np.ndarray | None = None,
) -> list[np.ndarray]:
    """Sums of each weight vector over the candidates at positions ``[edges[i], edges[i+1])``
    of the order (score desc, row asc), for every ``i``.

    ``w`` must be a function of the score (equal scores, equal weights): a group's sum is
    then the same whichever tied rows fall in it. Each group is summed on its own (no
    difference of running totals, so a group of tiny weights keeps its precision). Returns
    one float64 array of ``len(edges) - 1`` sums per weight vector.
    """
    edges = np.asarray(edges, dtype=np.int64)
    keys, bits = desc_keys(scores)
    b = _buckets(keys, bits)
    excl = _excluded(candidates, len(keys))
    counts = _bucket_sums(b, excl)
    cum = np.cumsum(counts)
    n_cand = int(cum[-1])
    if (np.diff(edges) < 0).any() or edges[0] < 0 or edges[-1] > n_cand:
        raise ValueError("edges must ascend from 0 to at most the number of candidates")
    lo, hi = edges[:-1], edges[1:]
    nonempty = hi > lo
    j_lo = np.searchsorted(cum, lo + 1, side="left")  # bucket of position lo
    j_hi = np.searchsorted(cum, hi, side="left")  # bucket of position hi - 1
    cand = None if candidates is None else np.asarray(candidates, dtype=bool)
    wanted = np.unique(np.r_[j_lo[nonempty], j_hi[nonempty]])
    srows, skeys = _in_buckets(b, keys, wanted, cand)
    start = cum - counts  # position of each bucket's first candidate
    key_t = keys.dtype.type
    first_in = np.searchsorted(skeys, wanted.astype(keys.dtype) << key_t(bits - BUCKET_BITS))
    at = dict(zip(wanted.tolist(), first_in.tolist(), strict=True))  # bucket -> srows offset
    out = []
    for w in weights:
        w = np.asarray(w, dtype=np.float64)
        wsum = _bucket_sums(b, excl, w)
        ws = w[srows]
        sums = np.zeros(len(lo))
        for i in np.flatnonzero(nonempty):
            a, c = int(j_lo[i]), int(j_hi[i])
            s0 = at[a] + int(lo[i] - start[a])  # srows offset of position lo
            if a == c:
                sums[i] = ws[s0 : s0 + int(hi[i] - lo[i])].sum()
                continue
            tail = ws[s0 : at[a] + int(counts[a])].sum()
            head = ws[at[c] : at[c] + int(hi[i] - start[c])].sum()
            sums[i] = tail + wsum[a + 1 : c].sum() + head
        out.append(sums)
    return out


def top_rows(scores: np.ndarray, n: int, eligible: np.ndarray | None = None) -> np.ndarray:
    """Row positions of the ``n`` highest scores among ``eligible`` rows, best first (ties:
    lower row first). One ``np.partition`` (no sort of all rows) finds the cut; only the
    rows at or above it are sorted, by one sort of 64-bit ``(key, row)`` pairs for float32."""
    scores = np.asarray(scores)
    m = len(scores) if eligible is None else int(np.count_nonzero(eligible))
    n = int(min(max(n, 0), m))
    if n == 0:
        return np.array([], dtype=np.int64)
    keys, bits = desc_keys(scores)
    if eligible is not None:
        keys[~np.asarray(eligible, dtype=bool)] = keys.dtype.type(~keys.dtype.type(0))
        # an ineligible row now has the largest key; eligible ones with that key (NaN-like
        # bit patterns only) cannot exist for real scores
    cut = np.partition(keys, n - 1)[n - 1] if n < len(keys) else keys.max()
    rows = np.flatnonzero(keys <= cut)
    if eligible is not None:
        rows = rows[np.asarray(eligible, dtype=bool)[rows]]
    k = keys[rows]
    if bits == 32 and len(scores) < 2**32:
        pair = (k.astype(np.uint64) << np.uint64(32)) | rows.astype(np.uint64)
        pair.sort()
        return (pair[:n] & np.uint64(0xFFFFFFFF)).astype(np.int64)
    return rows[np.lexsort((rows, k))[:n]].astype(np.int64)
