"""The feature table's sorted-array kernel (segments.kernel) = the Ibis path = brute force.

The kernel computes the events part (events, active days, last day, browse shares) from the
prepared store's arrays; the Ibis path groups the events in the engine; the reference is
plain pandas, user by user (segments.reference). Tolerance: relative 1e-12 (the same counts
divided the same way).
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from crm_helpers import load
from crm_helpers.segments import clusters as cl
from crm_helpers.segments import kernel
from crm_helpers.segments.reference import reference_features
from crm_helpers.store import from_frame

AS_OF = "2024-01-31"
D0 = pd.Timestamp("2024-01-01")
DAY_US = 86_400_000_000


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CRM_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("CRM_STORE_DIR", raising=False)


def _events(n: int = 3000, users: int = 120, seed: int = 0) -> pd.DataFrame:
    """Random events over 60 days around AS_OF (some after it), 9 categories and missing ones."""
    rng = np.random.default_rng(seed)
    cats = np.array(["home", "Toys & Games", "b", "c", "d", "e", "f", "g", "h"], dtype=object)
    cat = cats[rng.integers(0, len(cats), n)]
    cat[rng.random(n) < 0.2] = None
    return pd.DataFrame(
        {
            "user_id": rng.integers(1, users + 1, n).astype("int64"),
            "event": rng.choice(["visit", "view", "cart"], n),
            "ts": (D0 + pd.to_timedelta(rng.integers(-5 * DAY_US, 55 * DAY_US, n), "us")).astype(
                "datetime64[us]"
            ),
            "category": cat,
        }
    )


def _orders(users: int = 120, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = 150
    return pd.DataFrame(
        {
            "order_id": np.arange(1, n + 1, dtype="int64"),
            # users above ``users`` have orders but no events
            "user_id": rng.integers(1, users + 20, n).astype("int64"),
            "ts": (D0 + pd.to_timedelta(rng.integers(0, 45 * DAY_US, n), "us")).astype(
                "datetime64[us]"
            ),
            "revenue": np.round(rng.normal(20, 15, n), 2),
            "coupon": rng.choice(["", "SAVE", None], n),
        }
    )


def _messages(users: int = 120, seed: int = 2) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = 400
    sent = D0 + pd.to_timedelta(rng.integers(0, 45 * DAY_US, n), "us")
    opened = pd.Series(sent + pd.Timedelta(hours=1)).where(rng.random(n) < 0.5)
    clicked = opened.where(rng.random(n) < 0.4) + pd.Timedelta(minutes=5)
    return pd.DataFrame(
        {
            "message_id": np.arange(1, n + 1, dtype="int64"),
            "user_id": rng.integers(1, users + 30, n).astype("int64"),
            "sent_at": pd.Series(sent).astype("datetime64[us]"),
            "opened_at": opened.astype("datetime64[us]"),
            "clicked_at": clicked.astype("datetime64[us]"),
        }
    )


def _prepared_from_frame(events: pd.DataFrame) -> kernel.PreparedEvents:
    """The kernel's input built in plain pandas (no store): arrays and category codes."""
    arrays = from_frame(events, columns=["category"])
    codes, names = pd.factorize(pd.Series(arrays.columns["category"], dtype=object))
    return kernel.from_arrays(arrays, kernel.CategoryCodes(codes.astype(np.int32), tuple(names)))


def _check(got: pd.DataFrame, want: pd.DataFrame) -> None:
    assert list(got.columns) == list(want.columns)
    assert got["user_id"].tolist() == want["user_id"].tolist()
    cols = [c for c in want.columns if c != "user_id"]
    np.testing.assert_allclose(
        got[cols].to_numpy(float), want[cols].to_numpy(float), rtol=1e-12, atol=0
    )


@pytest.mark.parametrize("one_pass", [True, False], ids=["one-bincount", "two-pass"])
def test_kernel_equals_reference_from_frame(one_pass, monkeypatch):
    if not one_pass:  # many users x categories: the top categories in a pass of their own
        monkeypatch.setattr(kernel, "MAX_CELLS", 0)
    ev = _events()
    tbl, used = kernel.event_features(_prepared_from_frame(ev), cl.day_number(AS_OF))
    got = tbl.to_pandas()
    want = reference_features(AS_OF, events=ev)
    assert [f"browse_{cl._safe(v)}" for v in used] == [
        c for c in want.columns if c.startswith("browse_")
    ]
    assert len(used) == 8  # 9 categories: the 9th by count (ties by name) is left out
    got = got.rename(columns={f"_c{i}": f"browse_{cl._safe(v)}" for i, v in enumerate(used)})
    got = got.drop(columns="_last_e").fillna(0.0)
    _check(got, want.drop(columns="recency_days"))


def test_rows_after_as_of_and_missing_categories():
    """By hand: user 1 has 3 rows on 2 days (one after as_of, one without category);
    user 2 only rows after as_of (absent); user 3 one row without category (share null)."""
    ts = [D0, D0 + pd.Timedelta(hours=5), D0 + pd.Timedelta(days=3), D0 + pd.Timedelta(days=40)]
    ev = pd.DataFrame(
        {
            "user_id": [1, 1, 1, 1, 2, 3],
            "event": ["v"] * 6,
            "ts": pd.Series([*ts, ts[3], ts[2]]).astype("datetime64[us]"),
            "category": ["x", None, "y", "x", "x", None],
        }
    )
    tbl, used = kernel.event_features(_prepared_from_frame(ev), cl.day_number(AS_OF))
    got = tbl.to_pandas()
    assert used == ["x", "y"]  # x: 1 row on or before as_of (user 1), y: 1; ties by name
    assert got["user_id"].tolist() == [1, 3]
    assert got["events"].tolist() == [3.0, 1.0]
    assert got["active_days"].tolist() == [2.0, 1.0]
    assert got["_last_e"].tolist() == [cl.day_number(D0) + 3, cl.day_number(D0) + 3]
    assert got["_c0"].tolist()[0] == 0.5 and got["_c1"].tolist()[0] == 0.5
    assert got["_c0"].isna().tolist() == [False, True]  # no category: no share (0 in the table)


def _write(d: Path, events: pd.DataFrame) -> Path:
    d.mkdir(parents=True)
    events.to_parquet(d / "events.parquet", index=False)
    _orders().to_parquet(d / "orders.parquet", index=False)
    _messages().to_parquet(d / "messages.parquet", index=False)
    return d


@pytest.mark.parametrize(
    "with_category, parts, max_cells",
    [(True, 1, None), (False, 1, None), (True, "many", None), (True, "many", 0)],
    ids=["category", "no-category", "parts", "parts-top-pass"],
)
def test_store_kernel_equals_ibis_and_reference(
    tmp_path, monkeypatch, with_category, parts, max_cells
):
    """On files (DuckDB): the kernel path (prepared store) = the Ibis path = brute force,
    with the store in one part or in parts of ~400 rows (whole users each), and with the
    top categories in one pass or a pass of their own."""
    if parts == "many":
        from crm_helpers.store import build, prepare

        monkeypatch.setattr(
            prepare, "build_store", functools.partial(build.build_store, rows_per_part=400)
        )
    if max_cells is not None:
        monkeypatch.setattr(kernel, "MAX_CELLS", max_cells)
    ev = _events()
    if not with_category:
        ev = ev.drop(columns="category")
    data = load(_write(tmp_path / "d", ev), validate=False)
    prepared = kernel.prepared_inputs(data)
    assert prepared is not None and prepared.has_category == with_category
    assert sum(1 for _ in prepared.parts()) == (1 if parts == 1 else 8)
    tables = {"events": data.events, "orders": data.orders, "messages": data.messages}
    fast = cl.feature_table(as_of=AS_OF, **tables, prepared=prepared)
    ibis_path = cl.feature_table(as_of=AS_OF, **tables)
    want = reference_features(
        AS_OF, events=data.events.to_pandas(), orders=_orders(), messages=_messages()
    )
    _check(fast, ibis_path)
    _check(fast, want)
    assert fast.notna().all().all()


def test_explicit_browse_list_with_an_unseen_category(tmp_path):
    ev = _events()
    data = load(_write(tmp_path / "d", ev), validate=False)
    prepared = kernel.prepared_inputs(data)
    browse = ["h", "nowhere", "home"]
    fast = cl.feature_query(as_of=AS_OF, events=data.events, prepared=prepared, browse=browse)
    slow = cl.feature_query(as_of=AS_OF, events=data.events, browse=browse)
    _check(fast.to_pandas(), slow.to_pandas())
    assert (fast.to_pandas()["browse_nowhere"] == 0).all()


def test_no_store_off_the_embedded_engine():
    """A table in memory (no files): no prepared arrays, the Ibis path."""

    class NotFiles:
        engine = "pyspark"

    assert kernel.prepared_inputs(NotFiles()) is None


def test_ibis_path_leaves_out_rows_the_store_leaves_out():
    """Event rows without user_id or event name count on neither path (as the store drops
    them): the Ibis path on events with such rows = brute force on the events without them."""
    import ibis

    ev = _events(n=400, users=20)
    dirty = pd.concat(
        [
            ev,
            pd.DataFrame(
                {
                    "user_id": [None, 3],
                    "event": ["visit", None],
                    "ts": pd.Series([D0, D0]).astype("datetime64[us]"),
                    "category": ["home", "home"],
                }
            ),
        ],
        ignore_index=True,
    ).astype({"user_id": "Int64"})
    got = cl.feature_table(as_of=AS_OF, events=ibis.memtable(dirty))
    _check(got, reference_features(AS_OF, events=ev))
