"""$CRM_LOAD_TIME (crm_helpers.config.load_time): the validation's "now", set by crm run and
crm rerun, so a rerun months later excludes the same future-dated rows as its record."""

from __future__ import annotations

import datetime as _dt

import pandas as pd
import pytest

from crm_helpers import config, load


@pytest.fixture
def data_with_recent_rows(tmp_path):
    """1,000 events in 2024 and 50 dated 30 days ago (over 0.1%: they set the data's end)."""
    now = _dt.datetime.now(_dt.UTC).replace(tzinfo=None, microsecond=0)
    old = pd.date_range("2024-01-01", "2024-06-30", periods=1000)
    recent = [now - _dt.timedelta(days=30)] * 50
    ts = list(old) + recent
    pd.DataFrame({"user_id": [i % 97 for i in range(len(ts))], "event": "pv", "ts": ts}).to_csv(
        tmp_path / "events.csv", index=False
    )
    return tmp_path, now


def test_rows_after_the_load_time_are_excluded_as_of_it(data_with_recent_rows, monkeypatch):
    d, now = data_with_recent_rows
    monkeypatch.delenv(config.LOAD_TIME_ENV, raising=False)
    assert load(d).events.count().execute() == 1050  # now: all in the past
    as_of = (now - _dt.timedelta(days=60)).isoformat() + "+00:00"
    monkeypatch.setenv(config.LOAD_TIME_ENV, as_of)
    data = load(d)
    assert data.events.count().execute() == 1000  # then: 50 in the future, excluded
    assert "future_events" in {f.check for f in data.quality.findings}


def test_load_time_reads_iso_with_or_without_zone(monkeypatch):
    monkeypatch.setenv(config.LOAD_TIME_ENV, "2024-05-01T08:00:00+02:00")
    assert config.load_time() == _dt.datetime(2024, 5, 1, 6, 0)
    monkeypatch.setenv(config.LOAD_TIME_ENV, "2024-05-01 06:00:00")
    assert config.load_time() == _dt.datetime(2024, 5, 1, 6, 0)
    monkeypatch.setenv(config.LOAD_TIME_ENV, "yesterday")
    with pytest.raises(ValueError, match="CRM_LOAD_TIME"):
        config.load_time()
