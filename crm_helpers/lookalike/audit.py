"""Quality audit of a lookalike ranking on held-out seeds.

A share of the seeds is held out before training (:func:`split_seeds`). A model trained on
the remaining (*training*) seeds scores everyone; the audit ranks the **candidates** — the
population minus the training seeds — and asks where the held-out seeds land. Exclusions
(opt-outs, recent purchasers) do not apply here: the audit measures the ranking itself.

Definitions (``n_cand`` candidates, ``H`` held-out seeds among them; ties in score are broken
by row position, lower first, as in :func:`crm_helpers.lookalike.models.top_n`):

- ``recall_at(n)``: share of the ``H`` held-out seeds among the ``n`` best candidates;
- lift at ``q`` (a share of candidates): ``recall_at(ceil(q * n_cand)) / (ceil(q * n_cand) /
  n_cand)`` — 1 for a random ranking on average;
- ``auc``: probability that a random held-out seed outranks a random other candidate (ties
  count one half; Mann-Whitney U / (H * (n_cand - H)));
- precision at ``k``: held-out seeds among the top ``k`` / ``k``;
- calibration (for a model with probabilities ``p = P(training seed | x)`` trained on ``T``
  training seeds): per score decile of the candidates, the expected number of held-out
  seeds ``sum(p / (1 - p)) * H / T`` against the number observed. (Held-out seeds are a
  random share of the seeds, like the training ones: among the ``n`` users at ``x`` there
  are ``p n`` training seeds and ``p n H / T`` held-out ones, and the candidates there are
  ``(1 - p) n``, so each candidate carries ``p / (1 - p) * H / T``.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = [
    "RankAudit",
    "rank_order",
    "audit_ranking",
    "calibration_table",
    "gain_table",
    "split_seeds",
]

LIFT_POINTS = {"1%": 0.01, "5%": 0.05, "10%": 0.10}


def split_seeds(
    seed_index: np.ndarray, holdout_share: float, random_state: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Split seed row positions into (training, held-out), both sorted.

    ``round(holdout_share * n)`` seeds are held out, but at least one seed always trains:
    a one-seed audience has no held-out seed (its audit numbers are then undefined, NaN).
    """
    if not 0 <= holdout_share < 1:
        raise ValueError(f"holdout_share must be in [0, 1), got {holdout_share!r}")
    idx = np.asarray(seed_index)
    n_held = min(int(round(holdout_share * len(idx))), max(len(idx) - 1, 0))
    rng = np.random.default_rng(random_state)
    perm = rng.permutation(len(idx))
    return np.sort(idx[perm[n_held:]]), np.sort(idx[perm[:n_held]])


def _order(scores: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Candidate rows best first (score desc, row asc: ``rows`` are ascending, sort stable)."""
    return rows[np.argsort(-scores[rows], kind="stable")]


def rank_order(scores: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """Candidate row positions, best score first (ties: lower row first), shape (n_cand,).

    Computed once, it can be passed as ``order`` to :func:`audit_ranking`,
    :func:`gain_table` and :func:`calibration_table` (one sort for all of them).
    """
    return _order(np.asarray(scores), np.flatnonzero(candidates))


def _auc_sorted(sorted_scores: np.ndarray, positive: np.ndarray) -> float:
    """Mann-Whitney AUC from scores sorted descending (ties count one half)."""
    h = int(positive.sum())
    m = len(positive)
    if h == 0 or h == m:
        return math.nan
    new = np.r_[True, sorted_scores[1:] != sorted_scores[:-1]]
    group = np.cumsum(new) - 1
    pos = np.bincount(group, weights=positive)
    neg = np.bincount(group, weights=~positive)
    neg_below = (m - h) - np.cumsum(neg)  # negatives in strictly lower-scored groups
    return float((pos * (neg_below + 0.5 * neg)).sum() / (h * (m - h)))


@dataclass(frozen=True)
class RankAudit:
    """One model's numbers on one split (see the module docstring)."""

    n_candidates: int
    n_held_out: int
    n: int
    recall_at_n: float
    lift_at: dict
    auc: float


def audit_ranking(
    scores: np.ndarray,
    held_out: np.ndarray,
    candidates: np.ndarray,
    n: int,
    order: np.ndarray | None = None,
) -> RankAudit:
    """Recall at ``n``, lift at 1/5/10 % and AUC of held-out seeds among candidates.

    Parameters
    ----------
    scores : ndarray, shape (n_users,)
    held_out : ndarray of bool, shape (n_users,)
    candidates : ndarray of bool, shape (n_users,)
        Rows ranked (held-out seeds must be among them).
    n : int
        Audience size for the recall.
    order : ndarray, optional
        :func:`rank_order` of these scores and candidates, if already computed.
    """
    scores = np.asarray(scores)
    held_out = np.asarray(held_out, dtype=bool)
    ordered = rank_order(scores, candidates) if order is None else order
    h = int(held_out[ordered].sum())
    if h != int(held_out.sum()):
        raise ValueError("every held-out seed must be a candidate")
    rows = ordered
    ordered_pos = held_out[ordered]
    captured = np.cumsum(ordered_pos)
    m = len(rows)

    def recall(k: int) -> float:
        if h == 0:
            return math.nan
        k = min(max(int(k), 0), m)
        return float(captured[k - 1] / h) if k else 0.0

    lift = {}
    for label, q in LIFT_POINTS.items():
        k = max(1, math.ceil(round(q * m, 9))) if m else 0
        lift[label] = recall(k) / (k / m) if (m and h) else math.nan
    auc = _auc_sorted(scores[ordered], ordered_pos)
    return RankAudit(
        n_candidates=m,
        n_held_out=h,
        n=int(min(n, m)),
        recall_at_n=recall(n),
        lift_at=lift,
        auc=auc,
    )


def gain_table(
    scores: np.ndarray,
    held_out: np.ndarray,
    candidates: np.ndarray,
    points: int = 100,
    order: np.ndarray | None = None,
) -> pd.DataFrame:
    """Lift / gain / precision-recall curve at ``points`` evenly spaced audience shares.

    Returns
    -------
    pandas.DataFrame, shape (points, 7)
        ``share`` (of candidates), ``k``, ``captured`` (held-out seeds in the top k),
        ``recall``, ``precision`` (captured / k), ``random_recall`` (= k / n_candidates),
        ``lift`` (recall / random_recall).
    """
    held_out = np.asarray(held_out, dtype=bool)
    ordered = rank_order(scores, candidates) if order is None else order
    m, h = len(ordered), int(held_out[ordered].sum())
    captured = np.cumsum(held_out[ordered])
    i = np.arange(1, points + 1)
    ks = np.unique(((i * m + points - 1) // points).clip(1, max(m, 1)))  # ceil(i m / points)
    cap = captured[ks - 1] if m else np.zeros(0)
    recall = cap / h if h else np.full(len(ks), np.nan)
    return pd.DataFrame(
        {
            "share": ks / max(m, 1),
            "k": ks,
            "captured": cap.astype(int),
            "recall": recall,
            "precision": cap / ks,
            "random_recall": ks / max(m, 1),
            "lift": recall / (ks / max(m, 1)),
        }
    )


def calibration_table(
    proba: np.ndarray,
    held_out: np.ndarray,
    candidates: np.ndarray,
    n_training_seeds: int,
    bins: int = 10,
    order: np.ndarray | None = None,
) -> pd.DataFrame:
    """Expected vs observed held-out seeds per score decile of the candidates.

    Returns
    -------
    pandas.DataFrame, shape (<= bins, 5)
        ``decile`` (1 = highest scores), ``users``, ``mean_proba``, ``expected_held_out``
        (``sum(p / (1 - p)) * H / T``), ``observed_held_out``.
    """
    if n_training_seeds < 1:
        raise ValueError("calibration needs at least one training seed")
    held_out = np.asarray(held_out, dtype=bool)
    rows = rank_order(proba, candidates) if order is None else order
    h = int(held_out[rows].sum())
    groups = np.array_split(rows, min(bins, max(len(rows), 1)))
    out = []
    for i, g in enumerate(groups, start=1):
        p = np.asarray(proba, dtype=np.float64)[g]
        out.append(
            {
                "decile": i,
                "users": len(g),
                "mean_proba": float(p.mean()) if len(g) else math.nan,
                "expected_held_out": float(
                    (p / np.clip(1 - p, 1e-12, None)).sum() * h / n_training_seeds
                ),
                "observed_held_out": int(held_out[g].sum()),
            }
        )
    return pd.DataFrame(out)
