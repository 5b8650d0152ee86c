"""The audit's sufficient statistics and the selection against full sorts; the fused
scoring pass against each model's own scoring; the numpy k-means."""

from __future__ import annotations

import numpy as np
import pytest

from crm_helpers.lookalike.analysis import score_models
from crm_helpers.lookalike.models import kmeans, make_model, score_in_chunks
from crm_helpers.lookalike.ranks import desc_keys, group_sums, held_positions, top_rows


def _order(scores, cand):
    """Candidate rows under (score desc, row asc): one full stable index sort."""
    rows = np.flatnonzero(cand)
    return rows[np.argsort(-scores[rows].astype(np.float64), kind="stable")]


def _scores(rng, n, dtype, kind):
    if kind == "ties":
        s = rng.integers(0, 7, size=n) / 8.0
    elif kind == "narrow":  # every score in a few buckets: many rows per bucket
        s = 0.5 + rng.integers(0, 2000, size=n) * 1e-7
    elif kind == "signed":
        s = rng.standard_normal(n) * 1e3
        s[rng.random(n) < 0.02] = -np.inf
        s[:7] = -0.0
        s[7:11] = 0.0
    else:
        s = rng.random(n)
    return s.astype(dtype)


@pytest.mark.parametrize("kind", ["ties", "narrow", "signed", "uniform"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cand_share", [1.0, 0.7])
def test_held_positions_equal_a_full_sort(kind, dtype, cand_share):
    rng = np.random.default_rng(hash((kind, cand_share)) % 2**32)
    n = 20_000
    s = _scores(rng, n, dtype, kind)
    cand = rng.random(n) < cand_share
    rows = np.flatnonzero(cand & (rng.random(n) < 0.05))
    pos = held_positions(s, rows, None if cand_share == 1.0 else cand)
    order = _order(s, cand)
    where = np.empty(n, dtype=np.int64)
    where[order] = np.arange(len(order))
    sc = s[cand].astype(np.float64)
    v = s[rows].astype(np.float64)
    assert pos.n_candidates == cand.sum()
    assert pos.rank.tolist() == where[rows].tolist()
    assert pos.above.tolist() == [(sc > x).sum() for x in v]
    assert pos.equal.tolist() == [(sc == x).sum() for x in v]


@pytest.mark.parametrize("kind", ["ties", "narrow", "signed", "uniform"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_group_sums_equal_sums_over_the_sorted_candidates(kind, dtype):
    rng = np.random.default_rng(7)
    n = 30_000
    s = _scores(rng, n, dtype, kind)
    s = np.where(np.isfinite(s), s, -5.0).astype(dtype)
    cand = rng.random(n) < 0.8
    m = int(cand.sum())
    edges = np.unique(np.r_[0, rng.integers(0, m, size=12), m, m])
    w1 = s.astype(np.float64)
    w2 = np.abs(w1) ** 0.5
    got = group_sums(s, edges, [w1, w2], cand)
    order = _order(s, cand)
    for w, g in zip((w1, w2), got, strict=True):
        want = [w[order[a:b]].sum() for a, b in zip(edges[:-1], edges[1:], strict=True)]
        np.testing.assert_allclose(g, want, rtol=1e-12, atol=1e-9)
    with pytest.raises(ValueError, match="edges"):
        group_sums(s, np.array([0, m + 1]), [w1], cand)


@pytest.mark.parametrize("kind", ["ties", "narrow", "signed", "uniform"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_top", [1, 999, 15_000, 40_000])
def test_top_rows_equal_a_full_sort(kind, dtype, n_top):
    rng = np.random.default_rng(11)
    n = 30_000
    s = _scores(rng, n, dtype, kind)
    eligible = rng.random(n) < 0.9
    want = _order(s, eligible)[:n_top]
    assert top_rows(s, n_top, eligible).tolist() == want.tolist()
    assert top_rows(s, n_top).tolist() == _order(s, np.ones(n, bool))[:n_top].tolist()


def test_desc_keys_order_and_zero():
    v = np.array([-np.inf, -3.5, -0.0, 0.0, 1e-30, 2.0, np.inf], dtype=np.float32)
    for x in (v, v.astype(np.float64)):
        k, _ = desc_keys(x)
        assert (np.diff(k.astype(np.float64)[[0, 1, 2, 4, 5, 6]]) < 0).all()
        assert k[2] == k[3]  # -0.0 and 0.0 are one score


def _planted(n=60_000, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 8)).astype(np.float32)
    cls = rng.random(n) < 0.1
    X[cls, :3] += 1.0
    X[:, 6:] = np.abs(X[:, 6:]) * 3
    seeds = cls & (rng.random(n) < 0.2)
    return X, seeds


def test_one_pass_scores_equal_each_models_own():
    X, seeds = _planted()
    models = {k: make_model(k, 3, 0).fit(X, seeds) for k in ("pu", "centroid", "centroids")}
    models["random"] = make_model("random").fit(X, seeds)
    got = score_models(models, X, chunk_rows=4096)
    for k, m in models.items():
        if k == "random":
            m = make_model("random").fit(X, seeds)  # the same stream from the start
            want = score_in_chunks(m, X, 4096)
        else:
            want = m.predict_proba(X) if k == "pu" else m.score_samples(X)
        np.testing.assert_allclose(got[k], want, rtol=2e-6, atol=1e-7, err_msg=k)


def test_kmeans_finds_separated_clusters_sampled_or_not():
    rng = np.random.default_rng(3)
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    Z = np.vstack([c + rng.standard_normal((3000, 2)) for c in centres])
    for sample in (100_000, 500):  # all rows; a sample, then one step on all rows
        got = kmeans(Z, 3, n_init=4, random_state=0, sample_size=sample)
        nearest = ((got[:, None, :] - centres[None]) ** 2).sum(axis=2).argmin(axis=0)
        assert sorted(nearest.tolist()) == [0, 1, 2]  # one found centre per true one
        np.testing.assert_allclose(got[nearest], centres, atol=0.1)


@pytest.mark.parametrize("C", [0.001, 0.01, 1.0])
def test_newton_logistic_equals_sklearn(C):
    from sklearn.linear_model import LogisticRegression

    from crm_helpers.lookalike.models import fit_logistic

    rng = np.random.default_rng(4)
    Z = rng.standard_normal((5000, 6)).astype(np.float32)
    y = (rng.random(5000) < 1 / (1 + np.exp(-(Z[:, 0] - 0.5 * Z[:, 1] - 2)))).astype(float)
    coef, b = fit_logistic(Z, y, C)
    ref = LogisticRegression(C=C, tol=1e-12, max_iter=10_000).fit(Z.astype(np.float64), y)
    np.testing.assert_allclose(coef, ref.coef_.ravel(), rtol=1e-5, atol=1e-7)
    assert b == pytest.approx(ref.intercept_[0], rel=1e-5, abs=1e-7)


def test_expand_imports_no_sklearn():
    """A report's lookalike step does not pay scikit-learn's import."""
    import subprocess
    import sys

    code = (
        "import sys, numpy as np, pandas as pd\n"
        "from crm_helpers.lookalike.analysis import expand\n"
        "rng = np.random.default_rng(0); X = rng.standard_normal((3000, 5)).astype('float32')\n"
        "expand(np.arange(3000), pd.Series(np.arange(40)), size=100, matrix=X)\n"
        "print('sklearn' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
