"""Audit numbers on hand-made rankings, and the AUC against scikit-learn."""

from __future__ import annotations

import math

import numpy as np
import pytest

from crm_helpers.lookalike.audit import audit_ranking, calibration_table, gain_table, split_seeds


def _case():
    # 10 candidates (rows 0..9) + row 10 a training seed (not a candidate);
    # scores descending by row; held-out seeds at rows 0, 3 and 8.
    scores = np.array([10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 100], dtype=float)
    held = np.zeros(11, dtype=bool)
    held[[0, 3, 8]] = True
    cand = np.ones(11, dtype=bool)
    cand[10] = False
    return scores, held, cand


def test_recall_lift_auc_by_hand():
    scores, held, cand = _case()
    a = audit_ranking(scores, held, cand, n=4)
    assert a.n_candidates == 10 and a.n_held_out == 3 and a.n == 4
    assert a.recall_at_n == pytest.approx(2 / 3)  # rows 0 and 3 in the top 4
    # 1%, 5%, 10% of 10 candidates -> top 1: row 0 captured: recall 1/3 over share 1/10
    assert a.lift_at == {k: pytest.approx(10 / 3) for k in ("1%", "5%", "10%")}
    # pairs (held, other) where held ranks higher: row0 beats 7, row3 beats 5, row8 beats 1
    assert a.auc == pytest.approx((7 + 5 + 1) / 21)


def test_auc_matches_sklearn_with_ties():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(3)
    scores = rng.integers(0, 5, size=300).astype(float)  # many ties
    held = rng.random(300) < 0.1
    cand = np.ones(300, dtype=bool)
    a = audit_ranking(scores, held, cand, n=30)
    assert a.auc == pytest.approx(roc_auc_score(held, scores), abs=1e-12)


def test_gain_table_and_calibration_by_hand():
    scores, held, cand = _case()
    g = gain_table(scores, held, cand, points=5)
    assert g["k"].tolist() == [2, 4, 6, 8, 10]
    assert g["captured"].tolist() == [1, 2, 2, 2, 3]
    assert g["precision"].tolist() == pytest.approx([0.5, 0.5, 1 / 3, 0.25, 0.3])
    assert g["lift"].iloc[-1] == pytest.approx(1.0)
    p = np.linspace(0.9, 0.0, 11)
    c = calibration_table(p, held, cand, n_training_seeds=6, bins=2)
    assert c["users"].tolist() == [5, 5] and c["observed_held_out"].tolist() == [2, 1]
    # expected = sum(p / (1 - p) in bin) * H / T, H / T = 3 / 6
    assert c["expected_held_out"].iloc[0] == pytest.approx((p[:5] / (1 - p[:5])).sum() / 2)


def test_random_ranking_has_lift_about_one():
    rng = np.random.default_rng(0)
    n = 200_000
    held = rng.random(n) < 0.01
    a = audit_ranking(rng.random(n), held, np.ones(n, dtype=bool), n=n // 10)
    assert a.recall_at_n == pytest.approx(0.1, abs=0.02)
    assert a.lift_at["10%"] == pytest.approx(1.0, abs=0.2)
    assert a.auc == pytest.approx(0.5, abs=0.03)


def test_split_seeds():
    train, held = split_seeds(np.arange(100, 110), 0.3, random_state=1)
    assert len(held) == 3 and len(train) == 7
    assert sorted(np.r_[train, held].tolist()) == list(range(100, 110))
    train, held = split_seeds(np.array([5]), 0.5)
    assert train.tolist() == [5] and held.tolist() == []  # one seed: nothing held out
    with pytest.raises(ValueError, match="holdout_share"):
        split_seeds(np.arange(3), 1.0)


def test_no_held_out_seed_gives_nan():
    scores = np.arange(5, dtype=float)
    a = audit_ranking(scores, np.zeros(5, dtype=bool), np.ones(5, dtype=bool), n=2)
    assert math.isnan(a.recall_at_n) and math.isnan(a.auc)
    assert all(math.isnan(v) for v in a.lift_at.values())


def test_calibration_formula_with_true_probabilities():
    """With the true P(training seed | x), expected held-out seeds match the observed ones."""
    rng = np.random.default_rng(5)
    n = 200_000
    x = rng.random(n) < 0.05  # a dense seed region: 80% seeds there, 1% elsewhere
    seed = rng.random(n) < np.where(x, 0.8, 0.01)
    held = seed & (rng.random(n) < 0.25)
    train = seed & ~held
    t, h = int(train.sum()), int(held.sum())
    # true P(training seed | x): seed rate x share of seeds that train
    p = np.where(x, 0.8, 0.01) * t / (t + h)
    c = calibration_table(p, held, ~train, n_training_seeds=t, bins=10)
    top = c.iloc[0]  # the first tenth of candidates holds the dense region
    assert top["observed_held_out"] == pytest.approx(top["expected_held_out"], rel=0.1)
    assert c["observed_held_out"].sum() == pytest.approx(c["expected_held_out"].sum(), rel=0.1)


def _brute(scores, held, cand, n, points, proba_bins, t):
    """The audit numbers from one full stable index sort (score desc, row asc): the reference."""
    rows = np.flatnonzero(cand)
    ordered = rows[np.argsort(-scores[rows], kind="stable")]
    pos = held[ordered]
    h, m = int(pos.sum()), len(ordered)
    cap = np.r_[0, np.cumsum(pos)]
    i = np.arange(1, points + 1)
    ks = np.unique(((i * m + points - 1) // points).clip(1, m))
    groups = np.array_split(ordered, min(proba_bins, m))
    scores = scores.astype(np.float64)
    calib = [
        (len(g), scores[g].mean(), (scores[g] / (1 - scores[g])).sum() * h / t, held[g].sum())
        for g in groups
    ]
    return cap[min(n, m)] / h, cap[ks], calib


@pytest.mark.parametrize("cand_share", [0.9, 0.99])  # 0.99: few non-candidates (-inf path)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("seed", range(6))
def test_fast_ranking_equals_a_full_index_sort(seed, dtype, cand_share):
    """Positions from one value sort + searches equal the full stable argsort, ties included."""
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(seed)
    n = int(rng.integers(50, 3000))
    levels = int(rng.integers(2, 40)) if seed % 2 else n * 10  # heavy ties or almost none
    scores = (rng.integers(0, levels, size=n) / (levels + 1.0)).astype(dtype)  # in [0, 1)
    if seed == 4:
        scores = scores - dtype(0.5)  # negative scores too (the float32 key's sign bit)
        scores[:5] = -0.0
    cand = rng.random(n) < cand_share
    held = cand & (rng.random(n) < 0.15)
    if seed == 5:
        scores[rng.random(n) < 0.05] = -np.inf  # candidates at -inf too (the fallback)
    held[np.flatnonzero(cand)[0]] = True
    a = audit_ranking(scores, held, cand, n=n // 7)
    g = gain_table(scores, held, cand, points=37)
    recall, captured, _ = _brute(np.maximum(scores, -1), held, cand, n // 7, 37, 10, 11)
    q = np.maximum(scores, 0)  # a calibration needs finite scores
    c = calibration_table(q, held, cand, n_training_seeds=11, bins=10)
    *_, calib = _brute(q, held, cand, n // 7, 37, 10, 11)
    assert a.recall_at_n == pytest.approx(recall, abs=1e-15)
    assert g["captured"].tolist() == captured.tolist()
    assert c["users"].tolist() == [u for u, *_ in calib]
    assert c["observed_held_out"].tolist() == [o for *_, o in calib]
    assert c["mean_proba"].to_numpy() == pytest.approx([mp for _, mp, _, _ in calib], rel=1e-12)
    assert c["expected_held_out"].to_numpy() == pytest.approx([e for _, _, e, _ in calib], rel=1e-9)
    finite = np.nan_to_num(scores[cand], neginf=-10.0)  # same order; sklearn refuses inf
    assert a.auc == pytest.approx(roc_auc_score(held[cand], finite), abs=1e-12)
    p = np.abs(np.maximum(scores, -1)) / 2  # a probability for the calibration
    c = calibration_table(p, held, cand, n_training_seeds=11, bins=10)
    *_, calib = _brute(p, held, cand, n // 7, 37, 10, 11)
    assert c["observed_held_out"].tolist() == [o for *_, o in calib]
