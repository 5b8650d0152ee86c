"""The Schema mapping: names, YAML files, clear errors for mistakes."""

from __future__ import annotations

import pytest

from crm_helpers import config
from crm_helpers.schema import CONTRACT, PRIMARY_KEYS, TABLES, Schema


def test_source_names_and_rename_map():
    s = Schema(tables={"events": "ev"}, columns={"events": {"event": "name", "ts": "ts"}})
    assert s.file_stem("events") == "ev" and s.file_stem("users") == "users"
    assert s.source_column("events", "event") == "name"
    assert s.source_column("events", "user_id") == "user_id"
    assert s.rename_map("events") == {"name": "event"}  # identical names are not renamed


def test_example_yaml_is_valid_and_round_trips(tmp_path):
    s = Schema.from_yaml(config.ROOT / "data" / "schema.example.yaml")
    assert s.timezone == "Europe/Berlin"
    assert s.source_column("orders", "revenue") == "amount_eur"
    (tmp_path / "s.yaml").write_text(__import__("yaml").safe_dump(s.to_dict()))
    assert Schema.from_yaml(tmp_path / "s.yaml") == s


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("tables: {}\ncolums: {}\n", ["unknown key", "colums", "'columns'"]),
        ("tables: {evnts: e}\n", ["unknown table", "evnts", "events"]),
        (
            "columns: {events: {evnt: name}}\n",
            ["no contract column 'evnt'", "Did you mean 'event'"],
        ),
        ("columns: {events: [a, b]}\n", ["must map contract columns"]),
        ("timezone: Berlin/Europe\n", ["not a time zone", "Europe/Berlin"]),
        ("tables: {events: 3}\n", ["file name without extension"]),
        ("- a\n- b\n", ["mapping with 'tables'"]),
        ("tables: {events: [\n", ["not valid YAML"]),
    ],
)
def test_bad_yaml_errors_clearly(tmp_path, text, words):
    path = tmp_path / "schema.yaml"
    path.write_text(text)
    with pytest.raises(ValueError) as exc:
        Schema.from_yaml(path)
    for w in words:
        assert w in str(exc.value)


def test_missing_schema_file(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        Schema.from_yaml(tmp_path / "nope.yaml")


def test_contract_keys_are_contract_columns():
    assert set(PRIMARY_KEYS) <= set(TABLES)
    for table, key in PRIMARY_KEYS.items():
        for col in key:
            assert CONTRACT[table][col].kind == "id" and not CONTRACT[table][col].nullable
