"""Lookalike models on hand-made data: planted seed class, constant/null columns, sklearn API."""

from __future__ import annotations

import numpy as np
import pytest

from crm_helpers.lookalike.models import (
    CentroidSimilarity,
    PUClassifier,
    RandomScorer,
    make_model,
    score_in_chunks,
    top_n,
)


def _planted(n=20_000, share=0.05, seed=0):
    """Users of a planted class differ in features 0 and 1; 10% of them are seeds."""
    rng = np.random.default_rng(seed)
    cls = rng.random(n) < share
    X = rng.normal(size=(n, 6)).astype(np.float32)
    X[cls, 0] += 2.0
    X[cls, 1] -= 1.5
    X[:, 4] = 3.0  # constant column
    X[:, 5] = np.where(rng.random(n) < 0.5, 0, 1)
    seeds = cls & (rng.random(n) < 0.1)
    return X, cls, seeds


def _precision_top(scores, cls, seeds, k):
    top = top_n(scores, k, ~seeds)
    return cls[top].mean()


@pytest.mark.parametrize(
    "model",
    [PUClassifier(), CentroidSimilarity(1), CentroidSimilarity(3)],
    ids=["pu", "centroid", "centroids3"],
)
def test_models_find_the_planted_class(model):
    X, cls, seeds = _planted()
    assert model.fit(X, seeds) is model
    s = model.score_samples(X)
    assert s.dtype == np.float32 and s.shape == (len(X),) and np.isfinite(s).all()
    k = int(cls.sum())
    base = cls.mean()
    assert _precision_top(s, cls, seeds, k) > 5 * base  # random would give ~ base


def test_pu_beats_random_and_is_prior_corrected():
    X, cls, seeds = _planted()
    pu = PUClassifier().fit(X, seeds)
    rnd = RandomScorer().fit(X, seeds)
    k = int(cls.sum())
    assert _precision_top(pu.score_samples(X), cls, seeds, k) > 3 * _precision_top(
        rnd.score_samples(X), cls, seeds, k
    )
    p = pu.predict_proba(X)
    # prior correction: mean predicted seed probability ~ the seed share (not the training mix)
    assert pu.prior_ == pytest.approx(seeds.mean())
    assert p.mean() == pytest.approx(seeds.mean(), rel=0.25)
    assert abs(pu.coef_[4]) < 1e-9  # the constant column carries no weight
    assert set(vars(pu)) >= {"coef_", "intercept_", "mean_", "scale_", "log_", "prior_"}


def test_linear_parts_reproduce_the_score():
    X, _, seeds = _planted(n=3000)
    X[:, 2] = np.abs(X[:, 2]) * 10  # a count-like column gets log1p
    pu = PUClassifier(min_unlabeled=500).fit(X, seeds)
    lin = pu.linear_parts()
    assert lin["log"][2] and not lin["log"][0]
    X[0, 0] = 1e4  # an outlier: its standardised value is clipped at 3 standard deviations
    Z = X.astype(np.float64).copy()
    Z[:, lin["log"]] = np.log1p(Z[:, lin["log"]])
    assert Z[0, 0] > lin["upper"][0]
    np.testing.assert_allclose(lin["upper"], pu.mean_ + 3 * pu.scale_)
    np.testing.assert_allclose(lin["lower"], pu.mean_ - 3 * pu.scale_)
    Z = np.clip(Z, lin["lower"], lin["upper"])
    np.testing.assert_allclose(
        pu.score_samples(X), Z @ lin["weights"] + lin["intercept"], rtol=1e-4, atol=1e-4
    )
    # without clipping the outlier's score follows its raw value
    raw = PUClassifier(min_unlabeled=500, clip=None).fit(X, seeds)
    assert np.isinf(raw.linear_parts()["upper"]).all()
    assert abs(raw.score_samples(X[:1])[0]) > 100 * abs(pu.score_samples(X[:1])[0])
    with pytest.raises(ValueError, match="clip"):
        PUClassifier(clip=0)


def test_one_seed_nan_columns_and_chunks():
    X, _, seeds = _planted(n=2000)
    X[:, 3] = np.nan  # an all-null column
    one = np.zeros(len(X), dtype=bool)
    one[7] = True
    for name in ("pu", "centroid", "centroids", "random"):
        m = make_model(name).fit(X, one)
        s = m.score_samples(X)
        assert np.isfinite(s).all(), name
        chunked = score_in_chunks(m, X, chunk_rows=333)
        if name == "random":  # fresh draws per chunk, never a repeated block
            assert len(np.unique(chunked)) > 0.99 * len(X)
        else:
            np.testing.assert_allclose(chunked, s, rtol=1e-5, atol=1e-6)
    # with one seed, the centroid model ranks the seed itself first
    assert top_n(make_model("centroid").fit(X, one).score_samples(X), 1)[0] == 7


@pytest.mark.parametrize("log_counts", [True, False])
def test_scattered_nan_scores_like_zero(log_counts):
    """A NaN feature counts as 0 (before log and standardising), whatever the weight."""
    X, _, seeds = _planted(n=3000)
    X[:, 5] = np.abs(X[:, 5]) * 3  # a count-like column (log1p when log_counts)
    rng = np.random.default_rng(1)
    holes = X.copy()
    holes[rng.random(X.shape) < 0.02] = np.nan
    for name in ("pu", "centroid", "centroids"):
        m = make_model(name, log_counts=log_counts).fit(np.nan_to_num(holes), seeds)
        want = m.score_samples(np.nan_to_num(holes))
        np.testing.assert_allclose(m.score_samples(holes), want, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(score_in_chunks(m, holes, 251), want, rtol=1e-5, atol=1e-6)


def test_log1p_in_place_equals_numpy():
    from crm_helpers.lookalike.models import log1p_columns_inplace, log_count_columns

    rng = np.random.default_rng(2)
    X = (rng.normal(size=(70_000, 7)) * 3).astype(np.float32)
    X[rng.random(X.shape) < 0.01] = np.nan
    X[:, [0, 1, 3, 6]] = np.abs(X[:, [0, 1, 3, 6]])
    X[:, 3] = np.minimum(X[:, 3], 1)  # non-negative but never above 1: not count-like
    X[:, 5] = np.nan  # all null: not count-like
    cols = np.array([True, True, False, False, False, False, True])
    with pytest.warns(RuntimeWarning, match="All-NaN"):  # column 5, in the reference only
        ref = (np.nanmin(X, axis=0) >= 0) & (np.nanmax(X, axis=0) > 1)
    for chunk in (5000, 5001, 63, 10**6):  # folded rows and a remainder; all remainder
        assert log_count_columns(X, chunk_rows=chunk).tolist() == ref.tolist() == cols.tolist()
    want = np.nan_to_num(X)
    want[:, cols] = np.log1p(np.clip(want[:, cols], 0, None))
    log1p_columns_inplace(X, cols, chunk_rows=4096)  # > 4 chunks: the threaded path
    np.testing.assert_array_equal(X, want)


def test_bad_inputs():
    X, _, seeds = _planted(n=500)
    with pytest.raises(ValueError, match="no seed"):
        PUClassifier().fit(X, np.zeros(len(X), dtype=bool))
    with pytest.raises(ValueError, match="seed_mask"):
        PUClassifier().fit(X, seeds[:10])
    with pytest.raises(ValueError, match="unknown model"):
        make_model("knn")
    with pytest.raises(ValueError, match="n_centroids"):
        CentroidSimilarity(0)


def test_top_n_ties_and_eligibility():
    s = np.array([1.0, 3.0, 3.0, 2.0, 3.0])
    assert top_n(s, 2).tolist() == [1, 2]  # ties: lower row first
    assert top_n(s, 3, eligible=np.array([1, 0, 1, 1, 1], dtype=bool)).tolist() == [2, 4, 3]
    assert top_n(s, 10).tolist() == [1, 2, 4, 3, 0]
    assert top_n(s, 0).tolist() == []


def test_engine_side_score_equals_numpy():
    import ibis
    import pandas as pd

    from crm_helpers.engine import connect
    from crm_helpers.lookalike.models import linear_score_expr

    X, _, seeds = _planted(n=3000)
    X[:, 2] = np.abs(X[:, 2]) * 10  # count-like: log1p in both paths
    names = [f"f:{i}" for i in range(X.shape[1])]
    pu = PUClassifier(min_unlabeled=500).fit(X, seeds)
    X[:5, 0] = [-50.0, 50.0, 1e3, -1e3, 0.0]  # beyond the clipping bounds both ways
    df = pd.DataFrame(X.astype(np.float64), columns=names).assign(row=np.arange(len(X)))
    con = connect("duckdb")
    t = con.create_table("feats", df) if hasattr(con, "create_table") else ibis.memtable(df)
    got = t.mutate(score=linear_score_expr(t, pu, names)).order_by("row").to_pandas()["score"]
    np.testing.assert_allclose(got, pu.score_samples(X), rtol=1e-4, atol=1e-4)


def test_centroid_score_equals_the_cosine_in_standardised_space():
    """The algebraic form equals cos(z, c) computed directly (float64), rows at the mean too."""
    X, _, seeds = _planted(n=5000)
    X[:, 2] = X[:, 2] * 50 + 1000  # a large offset: float32 cancellation territory
    for k in (1, 3):
        m = CentroidSimilarity(k, log_counts=False).fit(X, seeds)
        X2 = X.copy()
        X2[:3] = m.mean_  # exactly the mean: a zero vector in standardised space
        X2[3, :] = m.mean_ + 1e-3 * m.scale_  # next to it
        Z = (X2.astype(np.float64) - m.mean_) / m.scale_
        nz = np.linalg.norm(Z, axis=1)
        want = (Z @ m.centroids_.T).max(axis=1) / np.where(nz > 0, nz, 1.0)
        got = m.score_samples(X2)
        np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-5)
        assert np.isfinite(got).all()


def test_audit_probabilities_equal_predict_proba():
    """expand's float32 in-place logistic equals predict_proba (float64) to float32 rounding."""
    from crm_helpers.lookalike.analysis import _scores

    X, _, seeds = _planted(n=4000)
    m = PUClassifier().fit(X, seeds)
    np.testing.assert_allclose(_scores(m, X, 1000), m.predict_proba(X), rtol=1e-6, atol=1e-30)
