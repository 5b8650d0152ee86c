"""Validation finds exactly the dirt the synthetic world planted (ground_truth["dirt"])."""

from __future__ import annotations

import json

import pytest

from crm_helpers import load
from crm_helpers.data.validate import DataContractError, validate


@pytest.fixture(scope="module")
def planted(dirty_world):
    return json.loads((dirty_world / "ground_truth.json").read_text())["dirt"]


def test_duplicate_order_ids_stop_the_load_with_the_planted_count(dirty_world, planted):
    with pytest.raises(DataContractError) as info:
        load(dirty_world)
    (finding,) = info.value.findings
    assert (finding.table, finding.column, finding.check) == ("orders", "order_id", "duplicate_key")
    assert finding.count == planted["duplicate_order_id_rows"]
    assert "orders" in str(info.value) and "order_id" in str(info.value)


def test_recoverable_dirt_is_counted_exactly(dirty_world, planted):
    found = validate(load(dirty_world, validate=False)).to_frame().set_index("check")["count"]
    assert found["null_user_id"] == planted["null_user_id_events"]
    assert found["future_events"] == planted["late_events"]
    assert found["duplicate_events"] == planted["duplicate_event_rows"]
    assert found["negative_quantity"] == planted["negative_quantity_orders"]


def test_clean_world_has_no_findings(small_world):
    assert validate(load(small_world, validate=False)).findings == []
