"""Loading: file formats, schema mapping, time zones on both engines, read-only data dir."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from crm_helpers.data import load
from crm_helpers.data.validate import DataContractError
from crm_helpers.schema import Schema
from tests.test_validate import good_frames, write_frames

# Wall times in Berlin around both 2024 DST changes (31 Mar, 27 Oct), incl. an ambiguous
# (02:30 on 27 Oct) and a non-existent (02:30 on 31 Mar) one.
BERLIN_WALL = pd.to_datetime(
    [
        "2024-01-15 12:00",
        "2024-03-31 01:30",
        "2024-03-31 02:30",
        "2024-03-31 03:30",
        "2024-07-01 12:00",
        "2024-10-27 01:30",
        "2024-10-27 02:30",
        "2024-10-27 03:30",
    ]
).as_unit("us")
# ... and what they are in UTC (summer-time reading for the ambiguous, +1 h for the gap)
BERLIN_UTC = pd.to_datetime(
    [
        "2024-01-15 11:00",
        "2024-03-31 00:30",
        "2024-03-31 01:30",
        "2024-03-31 01:30",
        "2024-07-01 10:00",
        "2024-10-26 23:30",
        "2024-10-27 00:30",
        "2024-10-27 02:30",
    ]
).as_unit("us")


def _snapshot(d: Path) -> dict[str, tuple[str, int]]:
    return {
        str(p.relative_to(d)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in sorted(d.rglob("*"))
        if p.is_file()
    }


def _events_ts(data) -> pd.Series:
    return data.events.order_by("user_id").to_pandas()["ts"].astype("datetime64[us]")


def _tz_frames(ts) -> dict[str, pd.DataFrame]:
    frames = good_frames()
    n = len(ts)
    frames["events"] = pd.DataFrame({"user_id": np.arange(1, n + 1), "event": "view", "ts": ts})
    return frames


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_naive_local_times_become_utc(tmp_path, con, fmt):
    d = write_frames(tmp_path, _tz_frames(BERLIN_WALL), fmt)
    (d / "schema.yaml").write_text("timezone: Europe/Berlin\n")
    data = load(d, engine=con)
    assert list(_events_ts(data)) == list(BERLIN_UTC)
    assert data.events.ts.type().timezone is None


def test_reference_utc_is_pandas_rule():
    ref = BERLIN_WALL.tz_localize(
        "Europe/Berlin",
        ambiguous=np.ones(len(BERLIN_WALL), dtype=bool),
        nonexistent=pd.Timedelta("1h"),
    )
    assert list(ref.tz_convert("UTC").tz_localize(None)) == list(BERLIN_UTC)


def test_aware_times_keep_their_zone(tmp_path, con):
    # tz-aware Parquet (Tokyo) and CSV text with offsets: the schema's zone is NOT applied
    aware = BERLIN_UTC.tz_localize("UTC").tz_convert("Asia/Tokyo")
    d = write_frames(tmp_path / "pq", _tz_frames(aware))
    (d / "schema.yaml").write_text("timezone: America/New_York\n")
    assert list(_events_ts(load(d, engine=con))) == list(BERLIN_UTC)

    text = [t.isoformat() for t in aware]  # '2024-01-15T20:00:00+09:00'
    text[0] = BERLIN_UTC[0].strftime("%Y-%m-%dT%H:%M:%SZ")
    frames = _tz_frames(text)
    d = write_frames(tmp_path / "csv", frames, "csv")
    (d / "schema.yaml").write_text("timezone: America/New_York\n")
    assert list(_events_ts(load(d, engine=con))) == list(BERLIN_UTC)


def test_parquet_part_directory(tmp_path, con):
    frames = good_frames()
    d = write_frames(tmp_path, {k: v for k, v in frames.items() if k != "events"})
    (d / "events").mkdir()
    ev = frames["events"]
    for i, part in enumerate(np.array_split(np.arange(len(ev)), 3)):
        ev.iloc[part].to_parquet(d / "events" / f"part-{i}.parquet", index=False)
    data = load(d, engine=con)
    assert data.files["events"] == d / "events"
    assert data.row_counts()["events"] == 100
    assert not data.quality.findings


def test_nothing_in_data_dir_is_written(tmp_path, con):
    d = write_frames(tmp_path / "data", good_frames())
    frames = good_frames()
    frames["events"].to_csv(d / "events_copy.csv", index=False)
    (d / "schema.yaml").write_text("timezone: Europe/Berlin\n")
    before = _snapshot(d)
    data = load(d, engine=con)
    data.events.group_by("event").aggregate(n=data.events.count()).to_pandas()
    data.fingerprint()
    after = _snapshot(d)
    assert after == before  # same files, same bytes, same mtimes; no .wal / .db / _SUCCESS


def test_schema_mapping_renames_columns_and_files(tmp_path):
    frames = good_frames()
    frames["events"] = frames["events"].rename(
        columns={"user_id": "customer_id", "event": "event_name", "ts": "event_time"}
    )
    frames["users"] = frames["users"].rename(columns={"user_id": "customer_id"})
    frames["tracking"] = frames.pop("events")
    d = write_frames(tmp_path, frames)
    yaml_text = (
        "tables: {events: tracking}\n"
        "columns:\n"
        "  events: {user_id: customer_id, event: event_name, ts: event_time}\n"
        "  users: {user_id: customer_id}\n"
    )
    (d / "schema.yaml").write_text(yaml_text)
    data = load(d)
    assert data.events.columns == ("user_id", "event", "ts")
    assert data.files["events"] == d / "tracking.parquet"
    assert not data.quality.findings
    # the same mapping passed explicitly (a path or a Schema) gives the same tables
    (d / "schema.yaml").rename(tmp_path / "elsewhere.yaml")
    by_path = load(d, schema=tmp_path / "elsewhere.yaml")
    assert by_path.row_counts() == data.row_counts()
    obj = Schema.from_yaml(tmp_path / "elsewhere.yaml")
    assert load(d, schema=obj).events.columns == ("user_id", "event", "ts")
    # without the mapping the table is simply absent, and requiring it says how to map it
    with pytest.raises(DataContractError, match=r"tables: \{events: <your file name"):
        load(d, require=["events"])


def test_mapped_column_missing_in_file(tmp_path):
    d = write_frames(tmp_path, good_frames())
    (d / "schema.yaml").write_text("columns: {events: {event: event_name}}\n")
    with pytest.raises(DataContractError) as exc:
        load(d)
    msg = str(exc.value)
    assert "is called 'event_name'" in msg and "table 'events', column 'event'" in msg
    assert "schema.yaml" in msg


def test_bad_schema_yaml_is_a_contract_error(tmp_path):
    d = write_frames(tmp_path, good_frames())
    (d / "schema.yaml").write_text("tables: {}\ncolumnz: {}\n")
    with pytest.raises(DataContractError, match="unknown key") as exc:
        load(d)
    assert "schema.example.yaml" in str(exc.value)
    assert exc.traceback[-1].name == "load"


def test_missing_directory_and_unknown_required_table(tmp_path):
    with pytest.raises(DataContractError, match="does not exist"):
        load(tmp_path / "nope")
    d = write_frames(tmp_path / "d", good_frames())
    with pytest.raises(ValueError, match="unknown table"):
        load(d, require=["evnts"])


def test_tables_are_lazy_views_not_copies(tmp_path):
    d = write_frames(tmp_path, good_frames())
    data = load(d)
    # a view over the file: rewriting the file (outside the analysis) is seen by the query
    assert data.raw["events"].get_name().startswith("crm_events_")
    assert (
        "read_parquet"
        in str(
            data.con.raw_sql(
                f"SELECT sql FROM duckdb_views() WHERE view_name = '{data.raw['events'].get_name()}'"
            ).fetchone()[0]
        ).lower()
    )
