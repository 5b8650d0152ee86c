"""Lookalike scorers, scikit-learn style: ``fit(X, seed_mask)`` returns self, fitted attributes
end in ``_``, ``score_samples(X)`` gives a float32 score per row (higher = more seed-like).

- :class:`PUClassifier` (the default): positive-unlabeled logistic regression. Positives are
  the seeds, "unlabeled" a uniform random sample of the other users (who may be seed-like;
  that is the point). Features are ``log1p``-transformed where a column is a non-negative
  count/amount with values above 1, standardised on the training rows, and winsorised at
  ``clip`` (3) standard deviations; the L2 penalty is strong (``C=0.01``). Both matter when
  the seeds are few (tens): unpenalised, the weights chase the few seeds' extreme values
  and rank worse than the centroid baseline; on the synthetic worlds, penalised and
  winsorised, the model ranks the planted type above the centroid at 46 and at 820
  training seeds (tests/lookalike/test_expansion.py). The logit is shifted from the
  training mix to the population's seed share (prior correction), so :meth:`predict_proba`
  estimates P(seed | x) in the population; :meth:`score_samples` is that logit (same ranking).
  The model is linear in the clipped, transformed features, so :meth:`linear_parts` gives
  what an engine needs to score it as an expression.
- :class:`CentroidSimilarity`: cosine similarity, in standardised feature space centred on
  the population mean, to the seed centroid (``n_centroids=1``) or the best of ``k`` seed
  sub-centroids (k-means on the seeds), so that a seed made of several kinds is served.
- :class:`RandomScorer`: uniform random scores, the baseline every audit compares with.

Constant columns are harmless everywhere (their scale is taken as 1, so they contribute
nothing); NaN is treated as 0 (the feature table has none).

:func:`score_in_chunks` scores a large matrix in row chunks (bounded extra memory, optional
tqdm progress bar); :func:`top_n` selects the best rows without a full sort.
"""

from __future__ import annotations

import threading

import numpy as np
from threadpoolctl import ThreadpoolController

from crm_helpers.lookalike.solvers import fit_logistic, kmeans

_CONTROLLER: ThreadpoolController | None = None


def one_blas_thread():
    """A context that limits BLAS/OpenMP to one thread (threadpoolctl). The controller that
    finds the libraries is made once: ``threadpool_limits`` rescans them on every call
    (~4 ms), which added up to ~0.4 s over the 38 chunks of a 10M-row scoring."""
    global _CONTROLLER
    if _CONTROLLER is None:
        _CONTROLLER = ThreadpoolController()
    return _CONTROLLER.limit(limits=1)


__all__ = [
    "MODELS",
    "CentroidSimilarity",
    "PUClassifier",
    "RandomScorer",
    "make_model",
    "score_in_chunks",
    "fit_logistic",
    "kmeans",
    "linear_score_expr",
    "log1p_columns_inplace",
    "log_count_columns",
    "top_n",
]


def _check(X, seed_mask=None) -> tuple[np.ndarray, np.ndarray | None]:
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (users x features), got shape {X.shape}")
    if seed_mask is None:
        return X, None
    mask = np.asarray(seed_mask, dtype=bool)
    if mask.shape != (X.shape[0],):
        raise ValueError(f"seed_mask must have shape ({X.shape[0]},), got {mask.shape}")
    if not mask.any():
        raise ValueError("no seed among the rows: a lookalike needs at least one seed user")
    return X, mask


class _Standardiser:
    """log1p on count-like columns, then (x - mean) / scale; scale 1 for constant columns.

    Works in float32 (the feature matrix's type); statistics are accumulated in float64.
    """

    def fit(self, X: np.ndarray, log_columns: np.ndarray | None = None):
        Z = self._log(X, log_columns)
        self.mean_ = Z.mean(axis=0, dtype=np.float64)
        sd = Z.std(axis=0, dtype=np.float64)
        self.scale_ = np.where(sd > 1e-6, sd, 1.0)
        return self

    def _log(self, X: np.ndarray, log_columns: np.ndarray | None = None) -> np.ndarray:
        X = np.array(X, dtype=np.float32, copy=True)
        if np.isnan(X).any():
            np.nan_to_num(X, copy=False)
        if log_columns is None and not hasattr(self, "log_"):
            log_columns = (X.min(axis=0) >= 0) & (X.max(axis=0) > 1) if len(X) else None
            self.log_ = np.zeros(X.shape[1], dtype=bool) if log_columns is None else log_columns
        elif log_columns is not None:
            self.log_ = np.asarray(log_columns, dtype=bool)
        for a, b in _runs(self.log_):  # views of column runs: no gather/scatter copies
            v = X[:, a:b]
            np.maximum(v, 0, out=v)
            np.log1p(v, out=v)
        return X

    def transform(self, X: np.ndarray) -> np.ndarray:
        Z = self._log(X)
        Z -= self.mean_.astype(np.float32)
        Z /= self.scale_.astype(np.float32)
        return Z


def _no_log(X: np.ndarray) -> np.ndarray:
    return np.zeros(np.asarray(X).shape[1], dtype=bool)


def log_count_columns(X: np.ndarray, chunk_rows: int = 1_000_000) -> np.ndarray:
    """Count-like columns (all values >= 0, some above 1): those the models ``log1p``.

    Returns a bool array, shape (n_features,). NaN is ignored.
    """
    from concurrent.futures import ThreadPoolExecutor

    X = np.asarray(X)

    d, k = X.shape[1], 64

    def one(s: int) -> tuple[np.ndarray, np.ndarray]:
        # fmin / fmax skip NaN without the copies nanmin makes. Rows are folded k at a time
        # into rows of k * d values: a reduction over long rows runs ~3x faster than over
        # d-wide ones; the k partial results are reduced after.
        c = X[s : s + chunk_rows]
        r = (len(c) // k) * k
        w = c[:r].reshape(r // k, k * d)
        lo = np.fmin.reduce(np.fmin.reduce(w, axis=0).reshape(k, d), axis=0) if r else None
        hi = np.fmax.reduce(np.fmax.reduce(w, axis=0).reshape(k, d), axis=0) if r else None
        if r < len(c):
            tlo, thi = np.fmin.reduce(c[r:], axis=0), np.fmax.reduce(c[r:], axis=0)
            lo = tlo if lo is None else np.fmin(lo, tlo)
            hi = thi if hi is None else np.fmax(hi, thi)
        return lo, hi

    lo = np.full(X.shape[1], np.inf)
    hi = np.full(X.shape[1], -np.inf)
    with ThreadPoolExecutor(2) as pool:  # ufunc reductions release the GIL
        for cmin, cmax in pool.map(one, range(0, len(X), chunk_rows)):
            lo, hi = np.fmin(lo, cmin), np.fmax(hi, cmax)
    return (lo >= 0) & (hi > 1)


def _runs(columns: np.ndarray) -> list[tuple[int, int]]:
    """Contiguous runs ``[a, b)`` of True in a bool vector."""
    edges = np.diff(np.r_[0, columns.astype(np.int8), 0])
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True))


def _log1p_runs(z: np.ndarray, runs: list[tuple[int, int]]) -> None:
    """``z[:, a:b] = log1p(max(z[:, a:b], 0))`` for each run, in place.

    Each run goes through a contiguous temporary (one strided read, one strided write):
    ufuncs over the strided view loop over rows of ``b - a`` values and ran ~2x slower.
    """
    for a, b in runs:
        tmp = np.maximum(z[:, a:b], 0)
        np.log1p(tmp, out=tmp)
        z[:, a:b] = tmp


#: Rows folded into one row for the elementwise clip (64 x 32 = 2048 values per inner loop:
#: a ufunc over 32-wide rows with a broadcast bound spends its time in loop overhead).
_FOLD = 64


def _clip_rows(src: np.ndarray, lo: np.ndarray, hi: np.ndarray, out: np.ndarray) -> None:
    """``out = min(max(src, lo), hi)`` per column (``lo``, ``hi`` of shape (d,)), over rows
    folded ``_FOLD`` at a time (``src`` and ``out`` C-contiguous, same shape)."""
    n, d = src.shape
    r = (n // _FOLD) * _FOLD
    if r:
        f_out = out[:r].reshape(r // _FOLD, _FOLD * d)
        np.minimum(src[:r].reshape(r // _FOLD, _FOLD * d), np.tile(hi, _FOLD), out=f_out)
        np.maximum(f_out, np.tile(lo, _FOLD), out=f_out)
    if r < n:
        np.minimum(src[r:], hi, out=out[r:])
        np.maximum(out[r:], lo, out=out[r:])


def log1p_columns_inplace(X: np.ndarray, columns: np.ndarray, chunk_rows: int = 65_536) -> None:
    """``X[:, columns] = log1p(max(X, 0))`` and NaN -> 0, in place, chunk by chunk.

    Works on views of contiguous column runs (no gather/scatter copies) and on two threads
    (numpy's ufuncs release the GIL): ~0.5 s for 16 of 32 columns of 10M rows on 2 cores.
    """
    from concurrent.futures import ThreadPoolExecutor

    runs = _runs(np.asarray(columns, dtype=bool))

    def one(s: int) -> None:
        c = X[s : s + chunk_rows]
        if np.isnan(c).any():
            np.nan_to_num(c, copy=False)
        _log1p_runs(c, runs)

    starts = range(0, len(X), chunk_rows)
    if len(X) <= 4 * chunk_rows:
        for s in starts:
            one(s)
        return
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(one, starts))


def _sample_rows(mask: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    rows = np.flatnonzero(mask)
    if len(rows) > size:
        rows = np.sort(rng.choice(rows, size=size, replace=False))
    return rows


class PUClassifier:
    """Positive-unlabeled logistic regression (the default lookalike model).

    Parameters
    ----------
    unlabeled_per_seed : float, default 10
        Unlabeled sample size per seed (at least ``min_unlabeled``, at most all non-seeds).
    min_unlabeled : int, default 20_000
    C : float, default 0.01
        Inverse L2 regularisation strength (scikit-learn ``LogisticRegression``'s objective,
        solved by :func:`fit_logistic`; the data
        term sums over the training rows, so the penalty weighs less as seeds grow).
    clip : float or None, default 3.0
        Standardised features are clipped to ``[-clip, clip]`` (winsorised) before fitting
        and scoring; None: no clipping.
    random_state : int, default 0
    log_counts : bool, default True
        ``log1p`` count-like columns; False when the caller has transformed them already
        (see :func:`log_count_columns`).

    Attributes
    ----------
    feature_names_ : list of str or None
    log_ : ndarray of bool, shape (n_features,)
        Columns that get ``log1p`` before standardising.
    mean_, scale_ : ndarray, shape (n_features,)
    lower_, upper_ : ndarray, shape (n_features,)
        Clipping bounds in the (``log1p``-transformed) feature units: ``mean_ -/+ clip *
        scale_`` (infinite without ``clip``).
    coef_ : ndarray, shape (n_features,)
        Weights on the standardised features (comparable across features: the drivers).
    intercept_ : float
        Intercept after the prior correction to the population's seed share.
    prior_ : float
        Seed share in the population (seeds / rows of ``X``).
    n_seeds_, n_unlabeled_ : int
    """

    def __init__(
        self,
        unlabeled_per_seed: float = 10.0,
        min_unlabeled: int = 20_000,
        C: float = 0.01,
        random_state: int = 0,
        log_counts: bool = True,
        clip: float | None = 3.0,
    ) -> None:
        if clip is not None and not clip > 0:
            raise ValueError(f"clip must be a positive number of standard deviations, got {clip!r}")
        self.clip = clip
        self.log_counts = log_counts
        self.unlabeled_per_seed = unlabeled_per_seed
        self.min_unlabeled = min_unlabeled
        self.C = C
        self.random_state = random_state

    def fit(self, X, seed_mask, feature_names=None) -> PUClassifier:
        """Fit on ``X`` (n_users, n_features) with ``seed_mask`` (n_users,) marking the seeds."""
        X, mask = _check(X, seed_mask)
        rng = np.random.default_rng(self.random_state)
        n_pos = int(mask.sum())
        size = int(max(self.min_unlabeled, self.unlabeled_per_seed * n_pos))
        unl = _sample_rows(~mask, size, rng)
        pos = np.flatnonzero(mask)
        rows = np.concatenate([pos, unl])
        y = np.r_[np.ones(len(pos)), np.zeros(len(unl))]
        self.feature_names_ = None if feature_names is None else list(feature_names)
        self.prior_ = n_pos / X.shape[0]
        self.n_seeds_, self.n_unlabeled_ = n_pos, len(unl)
        std = _Standardiser().fit(X[rows], None if self.log_counts else _no_log(X))
        self.log_, self.mean_, self.scale_ = std.log_, std.mean_, std.scale_
        c = np.inf if self.clip is None else float(self.clip)
        self.lower_, self.upper_ = self.mean_ - c * self.scale_, self.mean_ + c * self.scale_
        if len(unl) == 0:  # every user is a seed: nothing to contrast with
            self.coef_ = np.zeros(X.shape[1])
            self.intercept_ = float(np.log(1e6))
            return self
        with one_blas_thread():  # small problem: BLAS threads only contend (7x slower)
            Z = std.transform(X[rows])
            if self.clip is not None:
                np.clip(Z, -self.clip, self.clip, out=Z)
            coef, intercept = fit_logistic(Z, y, self.C)
        self.coef_ = coef
        train_share = len(pos) / len(rows)
        shift = _logit(self.prior_) - _logit(train_share)
        self.intercept_ = float(intercept + shift)
        return self

    def _std(self) -> _Standardiser:
        s = _Standardiser()
        s.log_, s.mean_, s.scale_ = self.log_, self.mean_, self.scale_
        return s

    def score_samples(self, X) -> np.ndarray:
        """Population logit of being a seed, shape (n_rows,), float32.

        Works in blocks of :data:`_BLOCK` rows (a cache-sized float32 copy: ``log1p``,
        clipping), so scoring reads ``X`` once and holds no copy of it.
        """
        X, _ = _check(X)
        lin = self.linear_parts()
        w = lin["weights"].astype(np.float32)
        lo, hi = lin["lower"].astype(np.float32), lin["upper"].astype(np.float32)
        clip = np.isfinite(lo).any() or np.isfinite(hi).any()
        if not clip and not self.log_.any():
            out = np.asarray(X @ w, dtype=np.float32)  # read as it is: no copy
            bad = np.isnan(out)  # a NaN feature makes its row's product NaN (even at w 0)
            if bad.any():
                out[bad] = np.nan_to_num(np.asarray(X[bad], dtype=np.float32)) @ w
            out += np.float32(lin["intercept"])
            return out
        std = self._std()
        out = np.empty(len(X), dtype=np.float32)
        runs = _runs(self.log_)

        # per block, into a reused cache-sized buffer per thread: copy and log1p of the
        # count column runs (through a contiguous temporary), clip by minimum + maximum over
        # folded rows (reading the block straight into the buffer when no log1p is due),
        # one product.
        # A NaN propagates to its row's score: those rows are redone exactly afterwards
        # (NaN counts as 0). Two threads over two halves of the rows (ufuncs and a
        # one-thread BLAS release the GIL): the block work is compute-, not read-bound.
        def run(a: int, b: int) -> None:
            buf = np.empty((min(_BLOCK, b - a), X.shape[1]), dtype=np.float32)
            for s in range(a, b, _BLOCK):
                e = min(s + _BLOCK, b)
                z = buf[: e - s]
                src = X[s:e]
                if runs or src.dtype != np.float32 or not src.flags.c_contiguous:
                    np.copyto(z, src, casting="same_kind")
                    _log1p_runs(z, runs)
                    src = z
                if clip:  # reads the block and writes the buffer in one go
                    _clip_rows(src, lo, hi, z)
                    src = z
                np.dot(src, w, out=out[s:e])

        n = len(X)
        # two threads from the main thread only: the audits already score two models at once
        if n >= 4 * _BLOCK and threading.current_thread() is threading.main_thread():
            from concurrent.futures import ThreadPoolExecutor

            mid = (n // 2 // _BLOCK) * _BLOCK
            with one_blas_thread(), ThreadPoolExecutor(2) as pool:
                list(pool.map(lambda ab: run(*ab), [(0, mid), (mid, n)]))
        else:
            run(0, n)
        bad = np.flatnonzero(np.isnan(out))
        if len(bad):
            Z = std._log(X[bad])  # NaN -> 0, then the same transform
            if clip:
                np.clip(Z, lo, hi, out=Z)
            out[bad] = Z @ w
        out += np.float32(lin["intercept"])
        return out

    def predict_proba(self, X) -> np.ndarray:
        """Estimated P(seed | x) in the population, shape (n_rows,)."""
        z = self.score_samples(X).astype(np.float64)
        return 1.0 / (1.0 + np.exp(-z))

    def linear_parts(self) -> dict:
        """``score = sum_j w_j * min(max(g_j(x_j), lower_j), upper_j) + b``.

        ``g_j = log1p`` on :attr:`log_` columns, the identity elsewhere (NaN counts as 0).

        Returns ``{"weights": w (per raw/log column), "intercept": b, "log": log_,
        "lower": lower_, "upper": upper_}``.
        """
        w = self.coef_ / self.scale_
        return {
            "weights": w,
            "intercept": float(self.intercept_ - (self.mean_ / self.scale_) @ self.coef_),
            "log": self.log_,
            "lower": self.lower_,
            "upper": self.upper_,
        }

    def feature_importance(self) -> np.ndarray:
        """Standardised coefficients, shape (n_features,): the score's drivers."""
        return self.coef_.copy()


#: Rows per block in :meth:`PUClassifier.score_samples` (16k x 32 float32 = 2 MB: in cache).
_BLOCK = 16_384


def _logit(p: float) -> float:
    p = min(max(p, 1e-12), 1 - 1e-12)
    return float(np.log(p / (1 - p)))


class CentroidSimilarity:
    """Cosine similarity to the seed centroid, or the best of ``n_centroids`` sub-centroids.

    Parameters
    ----------
    n_centroids : int, default 1
        ``k`` seed sub-centroids (k-means on the standardised seeds; fewer if fewer seeds).
    sample_size : int, default 200_000
        Rows sampled to standardise (the population mean and spread).
    random_state : int, default 0

    Attributes
    ----------
    log_, mean_, scale_ : ndarray, shape (n_features,)
    centroids_ : ndarray, shape (k, n_features)
        Unit-length centroids in standardised space.
    """

    def __init__(
        self,
        n_centroids: int = 1,
        sample_size: int = 200_000,
        random_state: int = 0,
        log_counts: bool = True,
    ) -> None:
        self.log_counts = log_counts
        if int(n_centroids) != n_centroids or n_centroids < 1:
            raise ValueError(f"n_centroids must be a whole number >= 1, got {n_centroids!r}")
        self.n_centroids = int(n_centroids)
        self.sample_size = sample_size
        self.random_state = random_state

    def fit(self, X, seed_mask, feature_names=None) -> CentroidSimilarity:
        X, mask = _check(X, seed_mask)
        rng = np.random.default_rng(self.random_state)
        rows = _sample_rows(np.ones(len(X), dtype=bool), self.sample_size, rng)
        std = _Standardiser().fit(X[rows], None if self.log_counts else _no_log(X))
        self.log_, self.mean_, self.scale_ = std.log_, std.mean_, std.scale_
        self.feature_names_ = None if feature_names is None else list(feature_names)
        Z = std.transform(X[mask])
        k = min(self.n_centroids, len(Z))
        if k == 1:
            C = Z.mean(axis=0, keepdims=True)
        else:
            C = kmeans(Z, k, n_init=4, random_state=self.random_state)
        norm = np.linalg.norm(C, axis=1, keepdims=True)
        self.centroids_ = C / np.where(norm > 0, norm, 1.0)
        return self

    def score_samples(self, X) -> np.ndarray:
        """Best cosine to a centroid in standardised space, shape (n_rows,), float32.

        Computed without a standardised copy of ``X``: with ``z = (x - m) / s``,
        ``z . c = x . (c / s) - m . (c / s)`` and ``|z|^2 = sum x^2 / s^2 - 2 x . (m / s^2) +
        sum m^2 / s^2`` (one matrix product and a product of the squares: a temporary of
        ``X``'s size, cache-sized when called on the blocks of the scoring pass). Rows whose
        ``|z|^2`` is small (where float32 cancellation matters) or NaN are recomputed from
        ``z`` itself, NaN counted as 0 before standardising.
        """
        X, _ = _check(X)
        if len(X) > 4 * _BLOCK:  # in blocks: the temporaries stay cache-sized
            out = np.empty(len(X), dtype=np.float32)
            for s in range(0, len(X), _BLOCK):
                out[s : s + _BLOCK] = self._score_block(X[s : s + _BLOCK])
            return out
        return self._score_block(X)

    def _score_block(self, X: np.ndarray) -> np.ndarray:
        if self.log_.any():
            X = self._std_log(X)  # float32 copy, NaN -> 0
        X = np.asarray(X, dtype=np.float32)
        inv = 1.0 / self.scale_
        cs = self.centroids_ * inv  # (k, d): the centroids as weights on raw features
        W = np.vstack([cs, -2.0 * self.mean_ * inv**2]).T.astype(np.float32)  # (d, k + 1)
        A = X @ W  # (rows, k + 1): one product with X as it lies (X.T in front ran 4x slower)
        sq = np.multiply(X, X)  # per row sum x^2 / s^2 as a product: an einsum ran 4x slower
        q = sq @ (inv**2).astype(np.float32)
        del sq
        q += A[:, -1] + np.float32((self.mean_**2 * inv**2).sum())
        off = (cs @ self.mean_).astype(np.float32)
        best = A[:, 0] - off[0]
        for j in range(1, len(cs)):  # max over the centroids, column by column
            np.maximum(best, A[:, j] - off[j], out=best)
        redo = ~(q > 1e-2)  # NaN rows and rows within ~0.1 standard units of the mean
        if redo.any():
            Z = (np.nan_to_num(X[redo]).astype(np.float64) - self.mean_) * inv
            q[redo] = (Z * Z).sum(axis=1)
            best[redo] = (Z @ self.centroids_.T).max(axis=1)
        norm = np.sqrt(q)
        return (best / np.where(norm > 0, norm, 1.0)).astype(np.float32)

    def _std_log(self, X: np.ndarray) -> np.ndarray:
        s = _Standardiser()
        s.log_, s.mean_, s.scale_ = self.log_, self.mean_, self.scale_
        return s._log(X)


class RandomScorer:
    """Uniform random scores in [0, 1): the baseline.

    The random stream starts at :meth:`fit` (``random_state``) and goes on across calls, so
    scoring in chunks draws fresh scores for every chunk (same fit + same calls -> same
    scores).
    """

    def __init__(self, random_state: int = 0) -> None:
        self.random_state = random_state

    def fit(self, X, seed_mask, feature_names=None) -> RandomScorer:
        _check(X, seed_mask)
        self.n_features_in_ = np.asarray(X).shape[1]
        self.rng_ = np.random.default_rng(self.random_state)
        return self

    def score_samples(self, X) -> np.ndarray:
        X, _ = _check(X)
        return self.rng_.random(len(X), dtype=np.float32)


#: Model names accepted by :func:`make_model` (the notebook's ``model`` parameter).
MODELS = ("pu", "centroid", "centroids", "random")


def make_model(name: str, n_centroids: int = 3, random_state: int = 0, log_counts: bool = True):
    """``"pu"`` (default), ``"centroid"`` (k=1), ``"centroids"`` (k sub-centroids), ``"random"``."""
    if name == "pu":
        return PUClassifier(random_state=random_state, log_counts=log_counts)
    if name == "centroid":
        return CentroidSimilarity(1, random_state=random_state, log_counts=log_counts)
    if name == "centroids":
        return CentroidSimilarity(n_centroids, random_state=random_state, log_counts=log_counts)
    if name == "random":
        return RandomScorer(random_state=random_state)
    raise ValueError(f"unknown model {name!r}: expected one of {', '.join(MODELS)}")


def score_in_chunks(model, X, chunk_rows: int = 262_144, progress: bool = False) -> np.ndarray:
    """``model.score_samples`` over row chunks of ``X``, shape (n_rows,) float32.

    Extra memory is bounded by one chunk's transformed copy. ``progress`` shows a tqdm bar
    (``tqdm.auto``: a widget in Jupyter, text elsewhere).
    """
    X = np.asarray(X)
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be >= 1, got {chunk_rows}")
    out = np.empty(len(X), dtype=np.float32)
    starts = range(0, len(X), chunk_rows)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, total=len(starts), desc="scoring", unit="chunk")
    for s in starts:
        out[s : s + chunk_rows] = model.score_samples(X[s : s + chunk_rows])
    return out


def top_n(scores: np.ndarray, n: int, eligible: np.ndarray | None = None) -> np.ndarray:
    """Row positions of the ``n`` highest scores among ``eligible`` rows, best first.

    Ties are broken by row position (lower first), so the result is deterministic.
    Fewer than ``n`` rows are returned when fewer are eligible. One partition finds the cut
    and only the rows at or above it are sorted (:func:`crm_helpers.lookalike.ranks.top_rows`).
    """
    from crm_helpers.lookalike.ranks import top_rows

    return top_rows(scores, n, eligible)


def linear_score_expr(table, model: PUClassifier, feature_names, log_columns=None):
    """The PU model's score as an Ibis expression over a feature table (engine-side scoring).

    ``sum_j w_j * clip(g_j(x_j)) + b`` with ``g_j = ln(1 + max(x_j, 0))`` on count-like
    columns (``log_columns``, e.g. :attr:`Expansion.log_columns`, or the model's own
    ``log_``) and the identity elsewhere, clipped to the model's ``[lower_j, upper_j]``;
    empty values count as 0. Runs on DuckDB and Spark alike (e.g.
    ``feature_table(data, spec).mutate(score=linear_score_expr(...))``), so a population
    too large for memory is scored where it lives. Equals :meth:`PUClassifier.score_samples`
    on the same rows up to float32 rounding.

    Parameters
    ----------
    table : ibis.Table
        Has every column of ``feature_names``.
    model : PUClassifier
        Fitted.
    feature_names : list of str
        The columns, in the order the model was fitted on.
    log_columns : array of bool, optional
        Columns to ``log1p`` besides the model's own ``log_`` (default: none).

    Returns
    -------
    ibis.FloatingValue
    """
    import ibis

    parts = model.linear_parts()
    logs = np.asarray(parts["log"] if log_columns is None else log_columns, dtype=bool)
    logs = logs | np.asarray(parts["log"], dtype=bool)
    expr = ibis.literal(float(parts["intercept"]))
    rows = zip(feature_names, parts["weights"], logs, parts["lower"], parts["upper"], strict=True)
    for name, w, lg, lo, hi in rows:
        if w == 0:
            continue
        x = table[name].cast("float64").fill_null(0.0)
        if lg:
            x = (ibis.greatest(x, 0.0) + 1.0).ln()
        if np.isfinite(lo):
            x = ibis.greatest(x, float(lo))
        if np.isfinite(hi):
            x = ibis.least(x, float(hi))
        expr = expr + float(w) * x
    return expr
