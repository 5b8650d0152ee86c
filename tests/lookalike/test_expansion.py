"""The expansion pipeline: sizes, exclusions, edge cases, export, and the planted seed type."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from crm_helpers import load
from crm_helpers.lookalike.analysis import (
    expand,
    export,
    holdout_assignments,
    resolve_size,
)
from crm_helpers.lookalike.features import feature_frame, feature_spec
from crm_helpers.lookalike.profile import profile_table, top_differences
from crm_helpers.lookalike.seeds import seed_ids


def _features(n=400, seed=0):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(rng.normal(size=(n, 3)), columns=["a", "b", "c"])
    df.insert(0, "user_id", np.arange(1000, 1000 + n))
    df["const"] = 1.0
    df["nulls"] = np.nan
    return df


def test_resolve_size():
    assert (
        resolve_size(0.1, 95) == 10 and resolve_size(50, 95) == 50 and resolve_size(500, 95) == 95
    )
    for bad in (0, -1, 2.5, float("nan")):
        with pytest.raises(ValueError, match="expansion size"):
            resolve_size(bad, 10)


def test_expand_sizes_exclusions_and_edge_cases():
    f = _features()
    seeds = pd.Series([1000, 1001, 1002, 1003, 1004, 999_999])  # one not in the population
    ex = expand(f, seeds, size=50, exclude_ids=pd.Series([1010, 1011]), holdout_share=0.4)
    assert (ex.seeds.given, ex.seeds.found, ex.seeds.missing.tolist()) == (6, 5, [999_999])
    assert len(ex.held_index) == 2 and ex.audience_size == 50
    aud = ex.audience
    assert not set(aud.user_id) & {1000, 1001, 1002, 1003, 1004, 1010, 1011}
    assert aud["rank"].tolist() == list(range(1, 51))
    assert aud["score"].is_monotonic_decreasing
    assert aud["decile"].value_counts().sort_index().tolist() == [5] * 10
    assert any("not in the population" in n for n in ex.notes)
    assert set(ex.recall_at_n()) == {"default", "centroid", "random"}
    # population smaller than N: everyone eligible, with a note
    ex = expand(f, seeds, size=10_000, exclude_seeds=False)
    assert ex.audience_size == len(f) and any("fewer than" in n for n in ex.notes)
    # one seed: nothing held out, audit numbers undefined, audience still built
    ex = expand(f, pd.Series([1000]), size=0.05)
    assert ex.audience_size == math.ceil(0.05 * (len(f) - 1)) and len(ex.held_index) == 0
    assert math.isnan(ex.recall_at_n()["default"])


def test_expand_bad_parameters():
    f = _features(50)
    with pytest.raises(ValueError, match="none of the 1 seed"):
        expand(f, pd.Series([1]), size=5)
    with pytest.raises(ValueError, match="unknown model"):
        expand(f, pd.Series([1000]), size=5, model="magic")
    with pytest.raises(ValueError, match="holdout_share"):
        expand(f, pd.Series([1000, 1001]), size=5, holdout_share=1.5)
    with pytest.raises(ValueError, match="duplicate"):
        expand(pd.concat([f, f]), pd.Series([1000]), size=5)


def test_holdout_assignments_and_export(tmp_path):
    f = _features()
    ex = expand(f, pd.Series([1000, 1001, 1002]), size=100)
    a = holdout_assignments(ex.audience, 0.1, "lookalike_2025", pd.Timestamp("2025-07-01"))
    assert list(a.columns) == [
        "experiment_id", "user_id", "variant", "assigned_at", "planned_share"
    ]  # fmt: skip
    assert (a.variant == "holdout").sum() == 10 and (a.variant == "treatment").sum() == 90
    assert a.groupby("variant")["planned_share"].unique().map(list).to_dict() == {
        "holdout": [0.1], "treatment": [0.9]
    }  # fmt: skip
    assert a.user_id.tolist() == ex.audience.user_id.tolist()
    with pytest.raises(ValueError, match="experiment id"):
        holdout_assignments(ex.audience, 0.1, " ", pd.Timestamp("2025-07-01"))
    paths = export(ex.audience, tmp_path / "out", assignments=a)
    back = pd.read_parquet(paths["audience"])
    assert list(back.columns) == ["user_id", "score", "rank", "decile"] and len(back) == 100
    assert pd.read_parquet(paths["assignments"]).equals(a)


def test_profile_index_by_hand():
    X = np.array([[1.0, 0.0], [3.0, 1.0], [2.0, 1.0], [2.0, 0.0]])
    masks = {
        "seeds": np.array([True, False, False, False]),
        "lookalikes": np.array([False, True, True, False]),
        "population": np.ones(4, dtype=bool),
    }
    p = profile_table(X, ["x", "attr:y=1"], masks)
    assert p["population_mean"].tolist() == [2.0, 0.5]
    assert p["seeds_index"].tolist() == [50.0, 0.0]
    assert p["lookalikes_index"].tolist() == [125.0, 200.0]
    assert top_differences(p, n=1)["feature"].tolist() == ["attr:y=1"]


def _planted_run(world, splits=(0,)):
    """Per model: held-out recall at n (mean over ``splits``) and planted-type share of the
    audience (n = the hidden rest of the planted type); and the type's population share."""
    truth = json.loads((world / "ground_truth.json").read_text())["lookalike_seed"]
    col = truth["column"].split(".", 1)[1]
    data = load(world)
    spec = feature_spec(data, lookback_days=90, exclude_attributes=[col])
    feats = feature_frame(data, spec)
    seeds = seed_ids(data, f"users.{col}", spec.as_of)
    assert len(seeds) == truth["seed_count"]
    n = truth["hidden_rest_count"]
    kind = pd.read_parquet(world / "truth" / "users.parquet").set_index("user_id")
    planted = kind["customer_type"] == truth["type"]
    recall = {"default": [], "centroid": [], "random": []}
    for rs in splits:
        ex = expand(feats, seeds, size=n, holdout_share=0.3, random_state=rs)
        for k, v in ex.recall_at_n().items():
            recall[k].append(v)
    share = {}
    for name in ("pu", "centroid", "random"):
        e = expand(feats, seeds, size=n, model=name, holdout_share=0.3)
        share[name] = planted.loc[e.audience.user_id].mean()
    return {k: float(np.mean(v)) for k, v in recall.items()}, share, planted.mean()


def test_planted_seed_type_ranked_at_the_top(dense_small_world):
    """Hidden members of the planted type fill the audience; PU beats centroid and random.

    dense_small_world (5k users, 66 seeds: 46 train, 20 held out, n = 545), mean over three
    splits: held-out recall default 0.65, centroid 0.58, random 0.15; planted-type share
    of the audience PU 0.661, centroid 0.532, random 0.108 (population 0.122), re-measured
    after the types got their own browsing tastes (before: recall 0.55 vs 0.50, share
    0.571 vs 0.503). On small_world (realistic rates, before the tastes): recall 0.57 vs
    0.58, share 0.494 vs 0.448. Twenty
    held-out seeds put a standard error of ~0.11 on a recall (one seed = 0.05), so recall
    is only asserted "not clearly worse" here; the type share (545 users) and the 60k
    world below separate the models. (Before the L2 penalty and winsorising of
    models.PUClassifier: PU recall 0.46 vs centroid 0.58 on small_world.)
    """
    rec, share, base = _planted_run(dense_small_world, splits=(0, 1, 2))
    print(f"recall {rec}, type share {share}, population {base:.3f}")
    assert rec["default"] >= 0.45
    assert rec["default"] > 3 * max(rec["random"], 0.05)
    assert rec["default"] >= rec["centroid"] - 0.05
    assert share["pu"] > 4 * base and share["pu"] >= 0.5
    assert share["pu"] >= share["centroid"] + 0.03
    assert share["pu"] > 4 * share["random"]


def test_planted_seed_type_at_scale(dense_world):
    """On the 60k dense world (684 seeds: 479 train, 205 held out; n = 6,412 = the hidden
    rest of the planted type) the default model is clearly above the centroid baseline.

    Measured (split 0) with the types' browsing tastes: held-out recall default 0.71,
    centroid 0.54, random 0.15; planted-type share of the audience PU 0.746, centroid
    0.571, random 0.100 (population 0.118). (Before the tastes: recall 0.62 vs 0.50, share
    0.665 vs 0.526.) Standard error of a recall here ~0.034 (and the
    two models' recalls are positively correlated on one split), so a 0.05 margin is honest.
    On the default 100k world (``make data``): recall 0.615 vs 0.473, share 0.608 vs 0.496.
    """
    rec, share, base = _planted_run(dense_world)
    print(f"recall {rec}, type share {share}, population {base:.3f}")
    assert rec["default"] >= rec["centroid"] + 0.05
    assert rec["default"] > 3 * rec["random"]
    assert share["pu"] >= share["centroid"] + 0.05
    assert share["pu"] > 4 * base and share["pu"] > 4 * share["random"]


def test_matrix_input_equals_frame_input():
    f = _features()
    names = [c for c in f.columns if c != "user_id"]
    X = f[names].to_numpy(dtype=np.float32, na_value=0.0)
    a = expand(f, pd.Series([1000, 1001, 1002, 1003]), size=30)
    b = expand(
        f["user_id"], pd.Series([1000, 1001, 1002, 1003]), size=30, matrix=X, feature_names=names
    )
    assert a.audience.equals(b.audience) and a.recall_at_n() == b.recall_at_n()
    with pytest.raises(ValueError, match="does not match"):
        expand(f["user_id"][:10], pd.Series([1000]), size=5, matrix=X)
