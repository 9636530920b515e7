"""SQLite migrations (store/sqlite/schema.py): a database left at any earlier version opens
to the same schema a new one gets, keeping its runs; and the runs table's indexes hold no row
for a finished run that no query reads it by (issue #17: bytes per finished run)."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from store_support import T0, insert_runs, make_run

from trigger_local.store import SqliteStore
from trigger_local.store.models import COMPLETED, QUEUED
from trigger_local.store.sqlite.schema import MIGRATIONS


def _schema(path: Path) -> set[tuple[str, str, str]]:
    with closing(sqlite3.connect(path)) as db:
        rows = db.execute("SELECT type, name, tbl_name FROM sqlite_master "
                          "WHERE name NOT LIKE 'sqlite_%'").fetchall()
    return {(str(t), str(n), str(tbl)) for t, n, tbl in rows}


async def _open_close(path: Path) -> None:
    store = SqliteStore(str(path))
    await store.open()
    await store.close()


@pytest.mark.parametrize("version", range(1, len(MIGRATIONS)))
async def test_a_database_at_any_earlier_version_migrates_to_the_new_schema(
        tmp_path: Path, version: int) -> None:
    fresh = tmp_path / "fresh.db"
    await _open_close(fresh)
    old = tmp_path / "old.db"
    with closing(sqlite3.connect(old)) as db:
        for sql in MIGRATIONS[:version]:
            db.executescript(sql)
        # the columns every version has; one live and one finished run of one batch
        db.executescript(f"""
            PRAGMA user_version = {version};
            INSERT INTO runs (id, task_id, status, snapshot_id, snapshot_kind, queue, created_at,
                              updated_at, queued_at, payload_type, batch_id, completed_at)
                VALUES ('run_live', 'hello', 'QUEUED', 's1', 'queued', 'task/hello', {T0}, {T0},
                        {T0}, 'application/json', 'batch_1', NULL),
                       ('run_done', 'hello', 'COMPLETED', 's2', 'finished', 'task/hello', {T0},
                        {T0}, {T0}, 'application/json', 'batch_1', {T0});
        """)
    store = SqliteStore(str(old))
    await store.open()
    try:
        read = store.read()
        assert {r.id for r in await read.runs.page()} == {"run_live", "run_done"}
        assert await read.batches.has_unfinished("batch_1")
        assert await read.runs.count_by_status() == {QUEUED: 1, COMPLETED: 1}
    finally:
        await store.close()
    with closing(sqlite3.connect(old)) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    assert _schema(old) == _schema(fresh)


async def test_a_finished_batch_run_has_no_row_in_the_batch_liveness_index(
        tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    store = SqliteStore(str(path))
    await store.open()
    try:
        await insert_runs(store, *(make_run(f"run_{i}", status=COMPLETED, batch_id="batch_1",
                                            completed_at=T0) for i in range(50)),
                          make_run("run_q", status=QUEUED, batch_id="batch_2"))
        assert not await store.read().batches.has_unfinished("batch_1")
        assert await store.read().batches.has_unfinished("batch_2")
    finally:
        await store.close()
    with closing(sqlite3.connect(path)) as db:
        names = {n for (n,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        # runs_queued (status, project, queue, queued_at) held a row for every run
        assert "runs_queued" not in names and "runs_batch_status" not in names
        # one index row: the live run's (the finished ones cost the index nothing)
        cells = db.execute("SELECT SUM(ncell) FROM dbstat WHERE name = 'runs_batch_live' "
                           "AND pagetype = 'leaf'").fetchone()[0]
        assert cells == 1
