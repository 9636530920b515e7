"""SQLite migrations (store/sqlite/schema.py): a database left at any earlier version opens
to the same schema a new one gets, keeping its runs; and the runs table's indexes hold no row
for a finished run that no query reads it by (issue #17: bytes per finished run)."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
import structlog.testing
from store_support import RECOUNT_SQL, T0, insert_runs, make_run

from trigger_local.ids import attempt_id, new_id
from trigger_local.store import SqliteStore
from trigger_local.store.models import COMPLETED, QUEUED, Attempt
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
        if version >= 20:  # since migration 20 the store counts an insert, not a trigger
            db.executescript(RECOUNT_SQL)
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


async def test_a_database_before_the_integer_key_keeps_its_attempts_tags_and_lists(
        tmp_path: Path) -> None:
    """Migration 18 (schema_compact.py) copies runs, attempts and tags into the rebuilt tables:
    attempts get ids derived from their run's (ids.attempt_id), the lists keep their order."""
    old = tmp_path / "old.db"
    with closing(sqlite3.connect(old)) as db:
        for sql in MIGRATIONS[:17]:
            db.executescript(sql)
        db.executescript(f"""
            PRAGMA user_version = 17;
            INSERT INTO runs (id, task_id, status, snapshot_id, snapshot_kind, queue, created_at,
                              updated_at, queued_at, payload_type, tags, metadata, completed_at,
                              project)
                VALUES ('run_a', 'hello', 'COMPLETED', 's1', 'finished', 'task/hello', {T0},
                        {T0}, {T0}, 'application/json', '["x"]', '{{"k":1}}', {T0 + 1},
                        'proj_local'),
                       ('run_b', 'hello', 'QUEUED', 's2', 'queued', 'task/hello', {T0 + 2},
                        {T0 + 2}, {T0 + 2}, 'text/plain', '[]', '{{}}', NULL, 'proj_local');
            INSERT INTO attempts (id, run_id, number, status, started_at, executor, counts)
                VALUES ('attempt_old1', 'run_a', 1, 'FAILED', {T0}, 'process', 0),
                       ('attempt_old2', 'run_a', 2, 'COMPLETED', {T0}, 'docker', 1),
                       ('attempt_orphan', 'run_gone', 1, 'COMPLETED', {T0}, 'process', 1);
        """)
    store = SqliteStore(str(old))
    await store.open()
    try:
        read = store.read()
        a, b = await read.runs.get_many(["run_a", "run_b"])
        assert (a.tags, a.metadata, a.payload_type) == (["x"], {"k": 1}, "application/json")
        assert (b.tags, b.metadata, b.payload_type) == ([], {}, "text/plain")
        attempts = await read.attempts.for_run("run_a")
        assert [(t.id, t.status, t.executor, t.counts) for t in attempts] == [
            (attempt_id("run_a", 1), "FAILED", "process", False),
            (attempt_id("run_a", 2), "COMPLETED", "docker", True)]
        assert [r.id for r in await read.runs.page(tags=["x"])] == ["run_a"]
        assert [r.id for r in await read.runs.page()] == ["run_b", "run_a"]
        assert [r.id for r in await read.runs.page(after="run_b")] == ["run_a"]
        async with store.tx() as ops:
            assert await ops.attempts.update(attempt_id("run_a", 2), error={"message": "m"})
            assert not await ops.attempts.update("attempt_old1", status="CRASHED")  # not one
            assert await ops.runs.delete_many(["run_a"]) == 1
        assert await read.attempts.for_run("run_a") == []
        assert await read.runs.page(tags=["x"]) == []
    finally:
        await store.close()


async def test_a_finished_run_costs_its_tables_under_600_bytes(tmp_path: Path) -> None:
    """Issue #17's goal, ≤ 0.6 KB per finished no-op run on disk: the run row, its attempt and
    every index entry of both (`dbstat`), for runs as the engine leaves them once compacted
    (scripts/bench_disk.py measures the whole file through the engine)."""
    path, n = tmp_path / "store.db", 4000
    store = SqliteStore(str(path))
    await store.open()
    try:
        runs = [make_run(new_id("run"), status=COMPLETED, at=T0 + i * 0.0137,
                         snapshot_id=new_id("snapshot"), snapshot_kind="finished",
                         task_id="noop", queue="task/noop", version_id="version_1",
                         started_at=T0 + i * 0.0137 + 0.1, completed_at=T0 + i * 0.0137 + 0.2,
                         output="null", output_type="application/json", attempt_count=1)
                for i in range(n)]
        await insert_runs(store, *runs)
        async with store.tx() as ops:
            for run in runs:
                await ops.attempts.insert(Attempt(
                    id=attempt_id(run.id, 1), run_id=run.id, number=1, status=COMPLETED,
                    started_at=run.created_at + 0.1, worker_id=new_id("worker"), pid=12345,
                    finished_at=run.created_at + 0.2))
    finally:
        await store.close()
    with closing(sqlite3.connect(path)) as db:
        used = db.execute(
            "SELECT SUM(pgsize) FROM dbstat WHERE name IN (SELECT name FROM sqlite_master "
            "WHERE tbl_name IN ('runs', 'attempts'))").fetchone()[0]
    assert used / n <= 600, f"{used / n:.0f} B per finished run"


async def test_an_upgrade_says_so_before_and_after_but_a_new_file_does_not(
        tmp_path: Path) -> None:
    old = tmp_path / "old.db"
    with closing(sqlite3.connect(old)) as db:
        for sql in MIGRATIONS[:17]:
            db.executescript(sql)
        db.executescript("PRAGMA user_version = 17;")
    with structlog.testing.capture_logs() as upgraded:
        await _open_close(old)
    events = [e["event"] for e in upgraded]
    assert any(e.startswith("upgrading the database") for e in events), events
    assert "database schema upgraded" in events
    with structlog.testing.capture_logs() as fresh:
        await _open_close(tmp_path / "new.db")
    assert not [e for e in fresh if "database" in e["event"]], fresh
