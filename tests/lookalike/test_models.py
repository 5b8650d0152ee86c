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
