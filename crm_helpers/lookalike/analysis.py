"""Lookalike expansion end to end on a feature frame: audit, final ranking, audience, export.

:func:`expand` takes the feature frame (one row per population user, from
:func:`crm_helpers.lookalike.features.feature_frame`) and the seed ids, and

1. matches the seeds to the population (missing ones counted);
2. leaves out every feature that is nearly a copy of the seed label (univariate AUC above
   ``near_copy_auc``, :func:`crm_helpers.lookalike.leakage.near_copies`), with a warning
   and a note naming it;
3. holds out ``holdout_share`` of the found seeds; fits the chosen model and the baselines
   (``centroid``: cosine to the seed centroid, ``centroids``: to ``n_centroids``
   sub-centroids, ``random``) on the training seeds; audits each on the same split
   (:mod:`crm_helpers.lookalike.audit`) with ``n`` = the audience size actually built
   (capped at the candidates), so the audit's recall and lift are those of this audience;
4. refits the chosen model on *all* found seeds and takes the ``n`` best *eligible* users:
   not excluded, and not seeds when ``exclude_seeds``.

Every model (the audited ones and the final one) is fitted first; then all of them score the
matrix in one pass (:func:`score_models`: blocks of rows read once, scored by every model
while in cache), and each audit is computed from the ranks' sufficient statistics
(:mod:`crm_helpers.lookalike.ranks`), without sorting the population.

The audience size is absolute (``size >= 1``, a whole number) or a share of the eligible
users (``0 < size < 1``, rounded up). When fewer users are eligible than asked for, all
eligible users form the audience and :attr:`Expansion.notes` says so.

The audience's ``score`` is the model's P(seed | x) for the PU model and its similarity or
random score otherwise; ``rank`` is 1 for the best user; ``decile`` is ``ceil(10 * rank /
n)`` (1 = best tenth of the audience).
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from crm_helpers.lookalike import audit as _audit
from crm_helpers.lookalike.leakage import NEAR_COPY_AUC, near_copies
from crm_helpers.lookalike.models import (
    log1p_columns_inplace,
    log_count_columns,
    make_model,
    score_in_chunks,
    top_n,
)
from crm_helpers.lookalike.seeds import SeedSet, match_seeds

__all__ = [
    "BASELINES",
    "Expansion",
    "audience_frame",
    "expand",
    "export",
    "holdout_assignments",
    "resolve_size",
]

#: Models audited next to the chosen one (metrics ``recall_at_n`` keys besides ``default``).
BASELINES = ("centroid", "centroids", "random")


def resolve_size(size: float, n_eligible: int) -> int:
    """Audience size: ``size`` users if ``size >= 1`` (whole), else ``ceil(size * n_eligible)``.

    Capped at ``n_eligible``. ``size <= 0``, a fractional ``size > 1`` or NaN is an error.
    """
    if size is None or not isinstance(size, int | float) or math.isnan(size) or size <= 0:
        raise ValueError(
            f"expansion size must be a number of users (>= 1) or a share in (0, 1), got {size!r}"
        )
    if size >= 1:
        if size != int(size):
            raise ValueError(f"expansion size {size} is above 1 but not a whole number of users")
        n = int(size)
    else:
        n = math.ceil(size * n_eligible)
    return min(n, n_eligible)


@dataclass
class Expansion:
    """Everything :func:`expand` computed (arrays are in population row order)."""

    user_ids: pd.Series
    feature_names: list[str]
    seeds: SeedSet
    train_index: np.ndarray
    held_index: np.ndarray
    model_name: str
    model: object
    audits: dict[str, _audit.RankAudit]
    gains: dict[str, pd.DataFrame]
    calibration: pd.DataFrame | None
    scores: np.ndarray
    audience_index: np.ndarray
    audience: pd.DataFrame
    requested_size: float
    n_eligible: int
    notes: list[str] = field(default_factory=list)
    #: Columns the models saw as ``log1p(x)`` (count-like); the fitted models' own ``log_``
    #: is all False because the working matrix was transformed once up front.
    log_columns: np.ndarray | None = None
    #: Features left out as near copies of the seed label: ``feature, column, auc``.
    near_copies: pd.DataFrame | None = None
    #: Wall seconds per stage of :func:`expand`: ``prepare`` (matrix, ``log1p``, seeds),
    #: ``leakage`` (near-copy guard, exclusions), ``fit`` (every model), ``score`` (the one
    #: pass), ``audit``, ``select`` (top n and the audience frame).
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def audience_size(self) -> int:
        return len(self.audience_index)

    def audit_at_audience(self) -> dict[str, float]:
        """The default model's audit at the audience size, in a manager's terms.

        ``n`` (the audience size the audit used), ``recall`` (share of the held-out seeds
        among the ``n`` best candidates), ``random_recall`` (what a random audience of ``n``
        expects: ``n / candidates``), ``lift`` (``recall / random_recall``: "the audience
        holds lift times as many hidden seeds as a random audience of the same size") and
        ``random_measured`` (the random baseline's recall on this split). NaN when no seed
        was held out.
        """
        a = self.audits["default"]
        expected = a.n / a.n_candidates if a.n_candidates else float("nan")
        lift = a.recall_at_n / expected if expected else float("nan")
        return {
            "n": float(a.n),
            "recall": a.recall_at_n,
            "random_recall": expected,
            "lift": lift,
            "random_measured": self.audits["random"].recall_at_n,
        }

    def recall_at_n(self) -> dict[str, float]:
        """``{"default": …, "centroid": …, "random": …}`` (the metrics' interface)."""
        return {
            "default": self.audits["default"].recall_at_n,
            "centroid": self.audits["centroid"].recall_at_n,
            "random": self.audits["random"].recall_at_n,
        }

    def audit_table(self) -> pd.DataFrame:
        """One row per audited model: recall at n, lift at 1/5/10 %, AUC."""
        rows = []
        for name, a in self.audits.items():
            label = f"default ({self.model_name})" if name == "default" else name
            rows.append(
                {
                    "model": label,
                    "n": a.n,
                    "held_out": a.n_held_out,
                    "recall_at_n": a.recall_at_n,
                    **{f"lift_at_{k}": v for k, v in a.lift_at.items()},
                    "auc": a.auc,
                }
            )
        return pd.DataFrame(rows)

    def masks(self) -> dict[str, np.ndarray]:
        """Boolean row masks ``{"seeds", "lookalikes", "population"}`` for profiles."""
        n = len(self.user_ids)
        seeds = np.zeros(n, dtype=bool)
        seeds[self.seeds.index] = True
        look = np.zeros(n, dtype=bool)
        look[self.audience_index] = True
        return {"seeds": seeds, "lookalikes": look, "population": np.ones(n, dtype=bool)}


def _unique_ids(ids: pd.Series) -> bool:
    """No id twice (a strictly increasing integer column is checked in one pass, no hashing)."""
    a = ids.to_numpy()
    if a.dtype.kind in "iu" and (len(a) < 2 or bool((a[1:] > a[:-1]).all())):
        return True
    return not ids.duplicated().any()


def _logistic_inplace(s: np.ndarray) -> np.ndarray:
    """The logistic of logits ``s``, in place in float32 (10x faster than through float64
    at 10M rows); logits are clipped to +-80 so exp stays finite (p within 2e-35 of 0 or 1)."""
    np.clip(s, -80.0, 80.0, out=s)
    np.negative(s, out=s)
    np.exp(s, out=s)
    s += 1.0
    return np.reciprocal(s, out=s)


#: Rows per block of the fused scoring pass (16k x 32 float32 = 2 MB: one core's L2).
PASS_ROWS = 16_384


def score_models(
    models: dict, X: np.ndarray, progress: bool = False, pool=None, chunk_rows: int = 262_144
) -> dict:
    """Every model's scores in one pass over ``X``: block by block, each block (cache-sized)
    is scored by every model while it is in cache, so memory is read once for all models.

    PU models give P(seed | x) (the logistic of their logit, in place); a
    :class:`~crm_helpers.lookalike.models.RandomScorer` draws its stream in row order apart
    from the pass (its draws must not depend on the threads' interleaving). Two threads
    (``pool``, or a new one) take alternate halves of the rows.

    Returns ``{name: float32 scores, shape (n_rows,)}``.
    """
    from concurrent.futures import ThreadPoolExecutor

    from crm_helpers.lookalike.models import RandomScorer, one_blas_thread

    n = len(X)
    out = {k: np.empty(n, dtype=np.float32) for k in models}
    pass_models = {k: m for k, m in models.items() if not isinstance(m, RandomScorer)}
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n, desc="scoring", unit="row", unit_scale=True)

    def run(a: int, b: int) -> None:
        for s in range(a, b, PASS_ROWS):
            e = min(s + PASS_ROWS, b)
            block = X[s:e]
            for k, m in pass_models.items():
                out[k][s:e] = m.score_samples(block)
            if bar is not None:
                bar.update(e - s)

    mid = (n // 2 // PASS_ROWS) * PASS_ROWS
    halves = [(0, mid), (mid, n)] if mid else [(0, n)]
    own = pool is None
    pool = ThreadPoolExecutor(2) if own else pool
    try:
        with one_blas_thread():  # two threads of one-thread BLAS products, never 2 x 2
            list(pool.map(lambda ab: run(*ab), halves))
    finally:
        if own:
            pool.shutdown()
    if bar is not None:
        bar.close()
    for k, m in models.items():
        if isinstance(m, RandomScorer):
            out[k] = score_in_chunks(m, X, chunk_rows)
        elif hasattr(m, "predict_proba"):
            _logistic_inplace(out[k])
    return out


def _scores(model, X, chunk_rows: int = 262_144, progress: bool = False) -> np.ndarray:
    """One model's scores as :func:`expand` computes them (:func:`score_models`)."""
    return score_models({"m": model}, X, progress, None, chunk_rows)["m"]


def expand(
    features: pd.DataFrame,
    seed_ids: pd.Series,
    *,
    size: float,
    model: str = "pu",
    holdout_share: float = 0.2,
    exclude_ids: pd.Series | None = None,
    exclude_seeds: bool = True,
    n_centroids: int = 3,
    random_state: int = 0,
    chunk_rows: int = 262_144,
    progress: bool = False,
    matrix: np.ndarray | None = None,
    feature_names: list[str] | None = None,
    overwrite_matrix: bool = False,
    near_copy_auc: float | None = NEAR_COPY_AUC,
) -> Expansion:
    """Audit and build a lookalike audience (see the module docstring).

    Parameters
    ----------
    features : pandas.DataFrame, shape (n_users, 1 + n_features)
        ``user_id`` and float feature columns, one row per population user. With
        ``matrix``: the user ids alone (Series or array, in the matrix's row order).
    seed_ids : pandas.Series
        Seed user ids (any may be missing from the population).
    size : float
        Audience size: users (>= 1) or share of eligible users (0, 1).
    model : {"pu", "centroid", "centroids", "random"}
    holdout_share : float in [0, 1)
    exclude_ids : pandas.Series, optional
        Users never put in the audience (opt-outs, recent purchasers).
    exclude_seeds : bool
    n_centroids : int
        ``k`` of the ``centroids`` model and baseline.
    chunk_rows : int
        Rows per call of the random baseline's scorer (the models are scored together in
        blocks of :data:`PASS_ROWS` rows, :func:`score_models`).
    matrix : ndarray, shape (n_users, n_features), optional
        The features as one (float32) matrix, used as it is (no copy): for large
        populations, so that memory holds the matrix once.
    feature_names : list of str, optional
        Names of ``matrix``'s columns.
    overwrite_matrix : bool, default False
        Transform ``matrix`` in place (``log1p`` of count-like columns) instead of working
        on a copy: memory then holds the matrix once.
    near_copy_auc : float or None, default 0.95
        Features whose univariate AUC for the seed label is above this (or below one minus
        it) are left out with a warning (:mod:`crm_helpers.lookalike.leakage`); None: no
        guard.

    Returns
    -------
    Expansion
    """
    make_model(model)  # validates the name before any work
    clock = [time.perf_counter()]
    timings: dict[str, float] = {}

    def lap(stage: str) -> None:
        now = time.perf_counter()
        timings[stage] = now - clock[0]
        clock[0] = now

    if matrix is not None:
        ids = pd.Series(np.asarray(features), name="user_id")
        X = np.asarray(matrix)
        if X.ndim != 2 or len(X) != len(ids):
            raise ValueError(f"matrix of shape {X.shape} does not match {len(ids)} user ids")
        names = list(feature_names or [f"f{i}" for i in range(X.shape[1])])
        if not overwrite_matrix or X.dtype != np.float32:
            X = np.array(X, dtype=np.float32)
    else:
        if "user_id" not in features.columns:
            raise ValueError("features need a 'user_id' column")
        ids = features["user_id"].reset_index(drop=True)
        names = [c for c in features.columns if c != "user_id"]
        X = features[names].to_numpy(dtype=np.float32, na_value=0.0, copy=True)
    if not len(ids):
        raise ValueError("the population is empty: no user to rank")
    if not _unique_ids(ids):
        raise ValueError("features have duplicate user_id rows: one row per user expected")
    # log1p of count-like columns once, in place on the working matrix (models skip it)
    log_columns = log_count_columns(X)
    log1p_columns_inplace(X, log_columns)
    seeds = match_seeds(seed_ids, ids)
    if seeds.found == 0:
        raise ValueError(
            f"none of the {seeds.given:,} seed ids is in the population of {len(ids):,} users: "
            "check the seed rule or file (ids are compared as text when their kinds differ)"
        )
    notes = []
    if len(seeds.missing):
        notes.append(
            f"{len(seeds.missing):,} of {seeds.given:,} seed ids are not in the population"
        )
    n_users = len(ids)
    lap("prepare")
    seed_mask = np.zeros(n_users, dtype=bool)
    seed_mask[seeds.index] = True
    copies = pd.DataFrame(columns=["feature", "column", "auc"])
    if near_copy_auc is not None and seeds.found < n_users:
        copies = near_copies(X, names, seed_mask, near_copy_auc, random_state=random_state)
        if len(copies) == len(names):
            raise ValueError(
                f"every feature is nearly a copy of the seed label (univariate AUC above "
                f"{near_copy_auc:g}) with {seeds.found:,} seed(s): nothing is left to find "
                "lookalikes by (too few seeds, or the features encode the seed)"
            )
        if len(copies):
            keep = np.ones(len(names), dtype=bool)
            keep[copies["column"].to_numpy()] = False
            X = X[:, keep]  # a copy, only when a near copy was found
            names = [n for n, k in zip(names, keep, strict=True) if k]
            log_columns = np.asarray(log_columns)[keep]
            listed = ", ".join(
                f"{f} (AUC {a:.3f})" for f, a in zip(copies.feature, copies.auc, strict=True)
            )
            msg = (
                f"left out as nearly a copy of the seed label (univariate AUC above "
                f"{near_copy_auc:g}): {listed}"
            )
            warnings.warn(f"lookalike: {msg}", UserWarning, stacklevel=2)
            notes.append(msg)
    excluded = np.zeros(n_users, dtype=bool)
    if exclude_ids is not None and len(exclude_ids):
        excluded[match_seeds(pd.Series(exclude_ids), ids).index] = True
    eligible = ~excluded & ~(seed_mask if exclude_seeds else np.zeros(n_users, dtype=bool))
    n_eligible = int(eligible.sum())
    n = resolve_size(size, n_eligible) if n_eligible else 0
    if size >= 1 and int(size) > n_eligible:
        notes.append(
            f"only {n_eligible:,} users are eligible, fewer than the {int(size):,} asked for: "
            "the audience is all of them"
        )

    lap("leakage")
    # audit: same split for every model
    train, held = _audit.split_seeds(seeds.index, holdout_share, random_state)
    train_mask = np.zeros(n_users, dtype=bool)
    train_mask[train] = True
    held_mask = np.zeros(n_users, dtype=bool)
    held_mask[held] = True
    candidates = ~train_mask
    n_audit = min(n, int(candidates.sum()))  # the audience actually built

    # fit every model first (the chosen one on the training seeds, the baselines, and the
    # chosen one again on all seeds), two at a time on the two cores (numpy and BLAS release
    # the GIL), each with one BLAS thread (one process-wide limit set here, so the threads
    # never race to set and restore it); then score them all in one pass over X, then audit
    from concurrent.futures import ThreadPoolExecutor

    from crm_helpers.lookalike.models import one_blas_thread

    names_audited = ("default", *BASELINES)
    jobs = {k: (model if k == "default" else k, train_mask) for k in names_audited}
    jobs["final"] = (model, seed_mask)

    def fit_one(key: str):
        name, mask = jobs[key]
        return make_model(name, n_centroids, random_state, False).fit(X, mask, names)

    def audit_one(name: str):
        s = scored[name]
        order = _audit.rank_order(s, candidates, held_mask)  # one bincount pass per model
        a = _audit.audit_ranking(s, held_mask, candidates, n_audit, order=order)
        g = _audit.gain_table(s, held_mask, candidates, order=order) if len(held) else None
        c = None
        if name == "default" and len(held) and hasattr(fitted[name], "predict_proba"):
            c = _audit.calibration_table(s, held_mask, candidates, len(train), order=order)
        return a, g, c

    with one_blas_thread(), ThreadPoolExecutor(2) as pool:
        fitted = dict(zip(jobs, pool.map(fit_one, list(jobs)), strict=True))
        lap("fit")
        scored = score_models(fitted, X, progress, pool, chunk_rows)
        lap("score")
        results = list(pool.map(audit_one, names_audited))
        lap("audit")
    final, scores = fitted["final"], scored["final"]
    audits = {k: r[0] for k, r in zip(names_audited, results, strict=True)}
    gains = {k: r[1] for k, r in zip(names_audited, results, strict=True)}
    calibration = results[0][2]

    chosen = top_n(scores, n, eligible)
    audience = audience_frame(ids.to_numpy()[chosen], scores[chosen])
    lap("select")
    return Expansion(
        user_ids=ids,
        feature_names=names,
        seeds=seeds,
        train_index=train,
        held_index=held,
        model_name=model,
        model=final,
        audits=audits,
        gains=gains,
        calibration=calibration,
        scores=scores,
        audience_index=chosen,
        audience=audience,
        requested_size=size,
        n_eligible=n_eligible,
        notes=notes,
        log_columns=log_columns,
        near_copies=copies,
        timings=timings,
    )


def audience_frame(user_ids, scores) -> pd.DataFrame:
    """``user_id, score, rank, decile`` for users already ordered best first.

    Returns
    -------
    pandas.DataFrame, shape (n, 4)
    """
    n = len(user_ids)
    rank = np.arange(1, n + 1)
    return pd.DataFrame(
        {
            "user_id": np.asarray(user_ids),
            "score": np.asarray(scores, dtype=np.float64),
            "rank": rank,
            "decile": np.ceil(10 * rank / max(n, 1)).astype(int),
        }
    )


def holdout_assignments(
    audience: pd.DataFrame,
    holdout_share: float,
    experiment_id: str,
    assigned_at: pd.Timestamp,
    random_state: int = 0,
) -> pd.DataFrame:
    """A randomized holdout inside the audience, as an ``assignments`` table (the contract's).

    ``round(holdout_share * n)`` audience members, drawn uniformly, get ``variant =
    "holdout"``, the rest ``"treatment"``; every row has ``experiment_id`` and
    ``assigned_at``, and ``planned_share``, the share planned for its arm (``holdout_share``
    or ``1 - holdout_share``), so that a readout of the experiment checks the split against
    this plan without being told it. Returns columns ``experiment_id, user_id, variant,
    assigned_at, planned_share``.
    """
    if not 0 <= holdout_share < 1:
        raise ValueError(f"audience holdout share must be in [0, 1), got {holdout_share!r}")
    if not str(experiment_id).strip():
        raise ValueError("the experiment id of the audience holdout is empty")
    n = len(audience)
    k = int(round(holdout_share * n))
    variant = np.full(n, "treatment", dtype=object)
    variant[np.random.default_rng(random_state).choice(n, size=k, replace=False)] = "holdout"
    return pd.DataFrame(
        {
            "experiment_id": str(experiment_id),
            "user_id": audience["user_id"].to_numpy(),
            "variant": variant,
            "assigned_at": pd.Timestamp(assigned_at),
            "planned_share": np.where(variant == "holdout", holdout_share, 1.0 - holdout_share),
        }
    )


def export(
    audience: pd.DataFrame,
    out_dir: str | Path,
    *,
    name: str = "lookalike_audience",
    assignments: pd.DataFrame | None = None,
    fmt: str = "parquet",
) -> dict[str, Path]:
    """Write the audience (and its assignments) with the shared atomic writer.

    Returns ``{"audience": path, "assignments": path}`` (the latter only when given).
    """
    from crm_helpers.audiences import export_audience

    out = Path(out_dir)
    paths = {"audience": export_audience(audience, out / f"{name}.{fmt}", fmt=fmt)}
    if assignments is not None:
        paths["assignments"] = export_audience(
            assignments, out / f"{name}_assignments.{fmt}", fmt=fmt
        )
    return paths
