"""Engine-side lookalike features equal the plain pandas reference (small world, hand cases)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from crm_helpers import load
from crm_helpers.lookalike.features import feature_frame, feature_spec
from crm_helpers.lookalike.reference import reference_features


def _tables(data) -> dict[str, pd.DataFrame]:
    return {name: t.to_pandas() for name, t in data.tables.items()}


def _assert_equal(got: pd.DataFrame, want: pd.DataFrame) -> None:
    assert list(got.columns) == list(want.columns)
    assert got["user_id"].tolist() == want["user_id"].tolist()
    for c in got.columns[1:]:
        # recency/tenure come from whole epoch seconds in the engine: 1e-4 days = 8.6 s
        atol = 1e-4 if c.endswith("_days") else 1e-9
        np.testing.assert_allclose(got[c], want[c], atol=atol, rtol=1e-9, err_msg=c)


@pytest.fixture(scope="module")
def small_part(small_world, tmp_path_factory):
    """The small world's first 250 users with all their rows (the reference is plain Python)."""
    out = tmp_path_factory.mktemp("lookalike_part")
    for name in ("users", "events", "orders", "messages"):
        df = pd.read_parquet(small_world / f"{name}.parquet")
        df[df["user_id"] <= 250].to_parquet(out / f"{name}.parquet")
    return out


def test_features_equal_reference_on_small_world(small_part):
    data = load(small_part)
    spec = feature_spec(data, lookback_days=30, exclude_attributes=["lookalike_seed"])
    assert spec.orders and spec.messages and spec.tenure
    assert "lookalike_seed" not in spec.attributes
    got = feature_frame(data, spec)
    want = reference_features(_tables(data), spec)
    assert len(got) == data.users.count().to_pandas()
    _assert_equal(got, want)


@pytest.mark.spark
def test_features_same_on_spark(small_part):
    duck = load(small_part)
    spec = feature_spec(duck, lookback_days=30, exclude_attributes=["lookalike_seed"])
    spark = load(small_part, engine="spark", validate=False)
    _assert_equal(feature_frame(spark, spec), feature_frame(duck, spec))


@pytest.fixture
def tiny(tmp_path):
    """Three users, hand-made events; user 3 has no events in the window."""
    ts = pd.to_datetime
    events = pd.DataFrame(
        {
            "user_id": [1, 1, 1, 2, 2, 3],
            "event": ["view", "view", "buy", "view", "view", "view"],
            "ts": ts(
                [
                    "2025-01-09 01:00",  # night
                    "2025-01-09 13:00",  # afternoon
                    "2025-01-10 19:00",  # evening
                    "2025-01-05 07:00",  # morning
                    "2025-01-05 08:00",
                    "2024-12-01 10:00",  # before the window
                ]
            ),
            "category": ["a", None, "b", "a", "a", "a"],
        }
    )
    users = pd.DataFrame(
        {
            "user_id": [1, 2, 3],
            "signup_at": ts(["2025-01-01", "2024-12-31", "2025-01-02"]),
            "tier": ["gold", None, "gold"],
            "constant": ["x", "x", "x"],
        }
    )
    events.to_parquet(tmp_path / "events.parquet")
    users.to_parquet(tmp_path / "users.parquet")
    return tmp_path


def test_hand_made_features(tiny):
    data = load(tiny)
    spec = feature_spec(data, lookback_days=10, as_of="2025-01-11")
    assert spec.event_types == ("view", "buy")
    assert not spec.orders and not spec.messages
    got = feature_frame(data, spec).set_index("user_id")
    assert got.loc[1, "events"] == 3 and got.loc[1, "active_days"] == 2
    assert got.loc[1, "count:view"] == 2 and got.loc[1, "count:buy"] == 1
    assert got.loc[1, "category:a"] == pytest.approx(0.5)  # 1 of 2 events with a category
    assert got.loc[1, "hour:night"] == pytest.approx(1 / 3)
    assert got.loc[1, "recency_days"] == pytest.approx(5 / 24)  # 19:00 -> midnight
    assert got.loc[2, "hour:morning"] == 1.0 and got.loc[2, "category:a"] == 1.0
    assert got.loc[3, "events"] == 0 and got.loc[3, "recency_days"] == 10  # none in window
    assert got.loc[3, "hour:night"] == 0 and got.loc[3, "category:a"] == 0
    assert got.loc[2, "attr:tier=gold"] == 0 and got.loc[3, "attr:tier=gold"] == 1
    assert got.loc[1, "tenure_days"] == 10
    assert (got["attr:constant=x"] == 1).all()  # a constant column is kept, models ignore it
    _assert_equal(feature_frame(data, spec), reference_features(_tables(data), spec))


def test_events_only_population_and_bad_parameters(tiny):
    (tiny / "users.parquet").unlink()
    data = load(tiny)
    spec = feature_spec(data, lookback_days=10, as_of="2025-01-11")
    assert spec.attributes == {} and not spec.tenure
    got = feature_frame(data, spec)
    assert got["user_id"].tolist() == [1, 2, 3]
    _assert_equal(got, reference_features(_tables(data), spec))
    with pytest.raises(ValueError, match="lookback_days"):
        feature_spec(data, lookback_days=0)
    with pytest.raises(ValueError, match="max_levels"):
        feature_spec(data, max_levels=0)
