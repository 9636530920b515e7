"""`Sql.update` (store/sqlite/sql.py) writes its statement's text once per shape — table, key,
condition and the changed columns in their order — and reuses it: a completion and a start each
update a run and an attempt, and building the text per call was a part of the daemon's CPU per
run (issue #13). The same text is never used for another shape."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from trigger_local.store.models import Queue
from trigger_local.store.sqlite import sql as sql_module
from trigger_local.store.sqlite.sql import Sql


def _sql(tmp_path: Path) -> Sql:
    conn = sqlite3.connect(tmp_path / "t.db", isolation_level=None)
    conn.execute("CREATE TABLE queues (project TEXT, name TEXT, paused INTEGER, "
                 "concurrency_limit INTEGER)")
    conn.execute("INSERT INTO queues VALUES ('p', 'a', 0, NULL), ('p', 'b', 0, NULL)")
    return Sql(conn)


def _rows(sql: Sql) -> list[tuple[object, ...]]:
    return sql.conn.execute("SELECT name, paused, concurrency_limit FROM queues "
                            "ORDER BY name").fetchall()


def test_an_update_reuses_its_shapes_text_and_each_shape_has_its_own(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sql_module, "_UPDATES", {})  # none of the other tests' shapes
    sql = _sql(tmp_path)
    where = " AND name = ?"
    assert sql.update("queues", Queue, "project", "p", {"paused": True}, where, ("a",))
    assert sql.update("queues", Queue, "project", "p", {"paused": False}, where, ("b",))
    shape = ("queues", "project", "?", where, "paused")
    first = sql_module._UPDATES[shape]
    assert sql.update("queues", Queue, "project", "p", {"paused": True}, where, ("b",))
    assert sql_module._UPDATES[shape] is first  # the text built once, not per call
    # the same columns in another order, and another set: statements of their own
    assert sql.update("queues", Queue, "project", "p",
                      {"concurrency_limit": 3, "paused": False}, where, ("a",))
    assert sql.update("queues", Queue, "project", "p",
                      {"paused": True, "concurrency_limit": 5}, where, ("b",))
    assert not sql.update("queues", Queue, "project", "p", {"paused": True}, where, ("c",))
    assert _rows(sql) == [("a", 0, 3), ("b", 1, 5)]
    ours = {k: v for k, v in sql_module._UPDATES.items() if k[:4] == shape[:4]}
    assert sorted(k[4:] for k in ours) == [("concurrency_limit", "paused"), ("paused",),
                                           ("paused", "concurrency_limit")]
    assert ours[(*shape[:4], "paused", "concurrency_limit")] == (
        "UPDATE queues SET paused = ?, concurrency_limit = ? WHERE project = ? AND name = ?")
