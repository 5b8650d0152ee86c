"""Unknown users when users' ids fill their range (validate_scale's density shortcut).

When as many users have an id as users' id range is wide and those ids are distinct,
every id inside the range is a user's, so a table whose ids lie inside it has no unknown
user, without a bitmap of its ids. Users with a hole, or with a duplicate that makes the
count look dense, must still count the rows exactly (compared with the exact paths and
with pandas).
"""

from __future__ import annotations

from tests.test_validate_scale import both, counts, world


def test_users_with_a_duplicate_that_looks_dense(tmp_path, monkeypatch):
    f = world(seed=6)
    f["users"].loc[5, "user_id"] = 6  # 300 ids over 0..299, but 5 is missing and 6 twice
    f["messages"].loc[[0, 1], "user_id"] = 5
    fast, exact = both(tmp_path, monkeypatch, f)
    assert fast == exact
    c = counts(fast[0])
    assert c[("messages", "user_id", "unknown_user")] == (f["messages"].user_id == 5).sum() >= 2
    assert c[("users", "user_id", "duplicate_key")] == 1


def test_users_with_a_hole(tmp_path, monkeypatch):
    f = world(seed=7)
    users = f["users"]
    f["users"] = users[users.user_id != 7].reset_index(drop=True)
    known = set(f["users"].user_id)
    fast, exact = both(tmp_path, monkeypatch, f)
    assert fast == exact
    want = int((~f["messages"].user_id.isin(known)).sum())
    assert want > 0
    assert counts(fast[0])[("messages", "user_id", "unknown_user")] == want


def test_dense_users_and_ids_inside_their_range(tmp_path, monkeypatch):
    fast, exact = both(tmp_path, monkeypatch, world(seed=8))
    assert fast == exact
    assert not any(k[2] == "unknown_user" for k in counts(fast[0]))
