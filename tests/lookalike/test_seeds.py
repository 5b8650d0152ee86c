"""Seed rules, files, matching to the population and exclusions."""

from __future__ import annotations

import pandas as pd
import pytest

from crm_helpers import load
from crm_helpers.lookalike.seeds import exclusion_ids, match_seeds, parse_seed, seed_ids

AS_OF = pd.Timestamp("2025-01-11")


@pytest.fixture
def world(tmp_path):
    ts = pd.to_datetime
    pd.DataFrame(
        {
            "user_id": [1, 2, 3, 4],
            "signup_at": ts(["2024-01-01"] * 4),
            "vip": [True, False, None, True],
            "opted_out": [False, True, False, False],
            "tier": ["gold", "silver", "gold", None],
        }
    ).to_parquet(tmp_path / "users.parquet")
    pd.DataFrame(
        {
            "user_id": [1, 1, 1, 2, 2, 3],
            "event": ["purchase", "purchase", "view", "purchase", "purchase", "purchase"],
            "ts": ts(
                ["2025-01-10", "2025-01-05", "2025-01-05", "2025-01-09", "2024-11-01", "2025-01-10"]
            ),
        }
    ).to_parquet(tmp_path / "events.parquet")
    return tmp_path


def test_parse_seed_forms_and_errors():
    r = parse_seed("purchase >= 3 in 90 days")
    assert (r.kind, r.event, r.min_count, r.days) == ("count", "purchase", 3, 90)
    assert parse_seed("users.vip").column == "vip" and parse_seed("users.vip").value is None
    assert parse_seed("users.tier == 'gold'").value == "gold"
    assert parse_seed("seeds/ids.csv").kind == "file"
    for bad in ["", "   ", "buyers", "purchase >= 0 in 9 days", "users."]:
        with pytest.raises(ValueError):
            parse_seed(bad)


def test_count_column_and_file_rules(world, tmp_path):
    data = load(world)
    # no orders table: purchases are purchase events; user 2's second one is too old
    assert sorted(seed_ids(data, "purchases >= 2 in 30 days", AS_OF)) == [1]
    assert sorted(seed_ids(data, "view >= 1 in 30 days", AS_OF)) == [1]
    assert sorted(seed_ids(data, "users.vip", AS_OF)) == [1, 4]  # null is not true
    assert sorted(seed_ids(data, "users.tier == gold", AS_OF)) == [1, 3]
    with pytest.raises(ValueError, match="no column"):
        seed_ids(data, "users.nope", AS_OF)
    with pytest.raises(ValueError, match="not true/false"):
        seed_ids(data, "users.tier", AS_OF)
    f = tmp_path / "ids.csv"
    pd.DataFrame({"user_id": ["1", "3", "99", "3"]}).to_csv(f, index=False)
    ids = seed_ids(data, str(f), AS_OF)
    assert len(ids) == 3  # distinct
    with pytest.raises(FileNotFoundError):
        seed_ids(data, str(tmp_path / "missing.parquet"), AS_OF)


def test_match_seeds_counts_missing_and_compares_text_ids():
    pop = pd.Series([10, 20, 30, 40])
    s = match_seeds(pd.Series(["20", "40", "77", "20.0"]), pop)
    assert (s.given, s.found, s.index.tolist(), s.missing.tolist()) == (3, 2, [1, 3], ["77"])
    s = match_seeds(pd.Series([20, 40, 77, 20]), pop)
    assert (s.given, s.found, s.index.tolist(), s.missing.tolist()) == (3, 2, [1, 3], [77])
    s = match_seeds(pd.Series(["b", "z"]), pd.Series(["a", "b"]))
    assert s.found == 1 and s.missing.tolist() == ["z"]


def test_exclusions(world):
    data = load(world)
    assert exclusion_ids(data, AS_OF).empty
    assert sorted(exclusion_ids(data, AS_OF, opted_out_column="opted_out")) == [2]
    got = exclusion_ids(data, AS_OF, opted_out_column="opted_out", recent_purchase_days=1)
    assert sorted(got) == [1, 2, 3]  # purchases on 2025-01-10 (users 1, 3) + opt-out 2
    with pytest.raises(ValueError, match="no column"):
        exclusion_ids(data, AS_OF, opted_out_column="unsubscribed")
    with pytest.raises(ValueError, match="recent_purchase_days"):
        exclusion_ids(data, AS_OF, recent_purchase_days=-1)
