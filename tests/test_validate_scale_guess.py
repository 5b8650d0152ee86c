"""Validation's free guesses from Parquet statistics (validate_scale.guesses).

On DuckDB over Parquet the key ranges and latest dates are read from the files' statistics
and the first query takes the key bitmaps and tail counts with them; they are used only
when the first query proves the guess covers the data. Here the guesses are taken as read,
then made wrong on purpose (ranges too narrow or too wide, latest dates too early or too
late): the report must stay that of the exact paths, and that of pandas.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from crm_helpers.data import load, validate_scale
from tests.test_validate_scale import both, counts, world, write


def shifted(real, how: str):
    def fake(data, contexts, backend):
        g = dict(real(data, contexts, backend))
        for k, v in list(g.items()):
            if v is None:
                continue
            if k.endswith("key_glo"):
                g[k] = v + 5 if how == "narrow" else v - 1000
            elif k.endswith("key_ghi"):
                g[k] = v - 5 if how == "narrow" else v + 1000
            elif k.endswith("_guess"):
                g[k] = v - dt.timedelta(days=2) if how == "narrow" else v + dt.timedelta(days=400)
        return g

    return fake


def test_guesses_come_from_the_files_and_cover_them(tmp_path):
    f = world(seed=9)
    d = write(tmp_path / "data", f)
    data = load(d, validate=False)
    from crm_helpers.data.validate import validate

    rows = []
    real = validate_scale.complete
    with pytest.MonkeyPatch.context() as m:
        m.setattr(
            validate_scale,
            "complete",
            lambda con, ctxs, row: (real(con, ctxs, row), rows.append(row)),
        )
        validate(data)
    (row,) = rows
    msgs = f["messages"]
    assert (row["messages__key_glo"], row["messages__key_ghi"]) == (0, len(msgs) - 1)
    assert row["messages__sent_at_guess"] == msgs.sent_at.max().tz_convert(None).to_pydatetime()
    assert row["messages__key_gbits"] == row["messages__key_distinct"] == len(msgs)
    assert row["messages__sent_at_gok"] is True


@pytest.mark.parametrize("how", ["narrow", "wide"])
def test_wrong_guesses_change_nothing(tmp_path, monkeypatch, how):
    f = world(seed=10)
    m = f["messages"]
    m.loc[[3, 4], "message_id"] = [9, 9]  # a duplicate key
    end = m.sent_at.max()
    m.loc[5, "sent_at"] = end + pd.Timedelta(days=200)  # a future outlier
    monkeypatch.setattr(validate_scale, "guesses", shifted(validate_scale.guesses, how))
    fast, exact = both(tmp_path, monkeypatch, f)
    assert fast == exact
    c = counts(fast[0])
    assert c[("messages", "message_id", "duplicate_key")] == len(m) - m.message_id.nunique() == 2
    assert c[("messages", "sent_at", "future_dates")] == 1


def test_csv_sources_take_no_guess(tmp_path):
    f = world(seed=11)
    d = tmp_path / "csv"
    d.mkdir()
    for name, df in f.items():
        df.to_csv(d / f"{name}.csv", index=False)
    data = load(d, validate=False)
    from crm_helpers.data.validate import validate

    seen = []
    real = validate_scale.guesses
    with pytest.MonkeyPatch.context() as m:
        m.setattr(validate_scale, "guesses", lambda *a: seen.append(real(*a)) or seen[-1])
        validate(data)
    assert seen == [{}]
