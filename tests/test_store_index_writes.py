"""What a run's writes cost the SQLite `runs` indexes (issue #13, migration 20): SQLite rewrites
an index whose columns or WHERE a statement changes, so a status change that does not concern an
index must not name it. A start leaves runs_batch_live alone (its WHERE reads `completed_at`,
which only a finish writes), runs_worker holds only the held runs that are not running, and an
insert fires no counter trigger (the store counts it in its journal); the readers of those
indexes answer as before, with the same index."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from store_support import (
    T0,
    make_run,
    sqlite_store,  # noqa: F401 (the store fixture)
)

from trigger_local.errors import StartupError
from trigger_local.store import SqliteStore
from trigger_local.store.models import COMPLETED, EXECUTING, QUEUED, WAITING
from trigger_local.store.sqlite.schema import MIGRATIONS

P = "proj_local"


def _opened_for_write(path: str, statement: str) -> set[str]:
    """The indexes of `runs` that `statement` opens to write (EXPLAIN's OpenWrite root pages)."""
    with closing(sqlite3.connect(path)) as conn:
        roots = {int(page): str(name) for name, page in conn.execute(
            "SELECT name, rootpage FROM sqlite_master WHERE type = 'index' "
            "AND tbl_name = 'runs'")}
        ops = conn.execute(f"EXPLAIN {statement}").fetchall()
    return {roots[int(op[3])] for op in ops if op[1] == "OpenWrite" and int(op[3]) in roots}


def _cells(path: str, index: str) -> int:
    with closing(sqlite3.connect(path)) as conn:
        n = conn.execute("SELECT SUM(ncell) FROM dbstat WHERE name = ? AND pagetype = 'leaf'",
                         (index,)).fetchone()[0]
    return int(n or 0)


async def _traced_update(store: SqliteStore, run_id: str, snapshot: str,
                         **changes: object) -> str:
    """Run the store's own compare-and-set of a status change; return the UPDATE it sent."""
    sent: list[str] = []
    writer = store._writer  # noqa: SLF001 - the statement the store really sends
    assert writer is not None
    writer.set_trace_callback(sent.append)
    try:
        async with store.tx() as ops:
            assert await ops.runs.update(run_id, snapshot, **changes)
    finally:
        writer.set_trace_callback(None)
    return next(s for s in sent if s.startswith("UPDATE runs"))


async def test_a_start_leaves_the_batch_and_worker_indexes_alone(store: SqliteStore) -> None:
    async with store.tx() as ops:
        await ops.runs.insert(make_run("run_b", batch_id="batch_1", version_id="v1", project=P))
    start = await _traced_update(store, "run_b", "snapshot_run_b", status=EXECUTING,
                                 snapshot_id="s2", snapshot_kind="executing", updated_at=T0 + 1,
                                 attempt_count=1, worker_id="worker_1", started_at=T0 + 1,
                                 deadline_at=None, version_id="v1", expires_at=None)
    assert "runs_batch_live" not in _opened_for_write(store.path, start)
    # an executing run is found by its status (runs_holding): runs_worker holds no row for it
    assert _cells(store.path, "runs_worker") == 0
    assert _cells(store.path, "runs_batch_live") == 1
    assert await store.read().batches.has_unfinished("batch_1")
    finish = await _traced_update(store, "run_b", "s2", status=COMPLETED, snapshot_id="s3",
                                  snapshot_kind="finished", updated_at=T0 + 2,
                                  completed_at=T0 + 2, deadline_at=None, worker_id=None)
    assert "runs_batch_live" in _opened_for_write(store.path, finish)  # the run left it
    assert _cells(store.path, "runs_batch_live") == 0
    assert not await store.read().batches.has_unfinished("batch_1")


async def test_runs_on_workers_are_found_running_and_held(store: SqliteStore) -> None:
    async with store.tx() as ops:
        await ops.runs.insert_many([
            make_run("run_x", status=EXECUTING, worker_id="worker_1", project=P),
            make_run("run_w", status=WAITING, worker_id="worker_1", project=P),
            make_run("run_h", status=QUEUED, worker_id="worker_2", project=P),  # held, resuming
            make_run("run_q", status=QUEUED, project=P),
            make_run("run_e", status=WAITING, project=P),  # evicted: no process
            make_run("run_c", status=COMPLETED, completed_at=T0, project=P),
        ])
    assert {r.id for r in await store.read().runs.on_workers()} == {"run_x", "run_w", "run_h"}
    assert _cells(store.path, "runs_worker") == 2  # the held ones only


async def test_an_insert_fires_no_counter_trigger_and_the_counters_stay_exact(
        store: SqliteStore) -> None:
    with closing(sqlite3.connect(store.path)) as conn:
        inserts = {str(name) for (name,) in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'runs' "
            "AND sql LIKE '%AFTER INSERT%'")}
    assert inserts == {"runs_tags_insert"}  # only for a run with tags
    async with store.tx() as ops:
        await ops.runs.insert_many([make_run(f"run_{i}", project=P) for i in range(5)])
        await ops.runs.insert(make_run("run_c", status=COMPLETED, completed_at=T0, project=P))
        await ops.runs.delete_many(["run_0"])  # its trigger's -1 before the journal's +1s
    assert await store.read().runs.count_by_status() == {QUEUED: 4, COMPLETED: 1}
    with closing(sqlite3.connect(store.path)) as conn:
        rows = conn.execute("SELECT project, queue, status, n FROM queue_counts WHERE n != 0")
        assert rows.fetchall() == [(P, "task/hello", QUEUED, 4)]


async def test_insert_many_that_fails_half_way_counts_the_rows_it_wrote(tmp_path: Path) -> None:
    # review rv9a: the rows before a failing one stay in the transaction; counted after the
    # whole executemany, they were never counted and the counters fell behind the rows for good
    store = SqliteStore(str(tmp_path / "c.db"))
    await store.open()
    try:
        async with store.tx() as ops:
            await ops.runs.insert(make_run("run_a", status=QUEUED, project="proj_local"))
        async with store.tx() as ops:
            with pytest.raises(sqlite3.IntegrityError):
                await ops.runs.insert_many([
                    make_run("run_b", status=QUEUED, project="proj_local"),
                    make_run("run_a", status=QUEUED, project="proj_local")])
        rows = len(await store.read().runs.page(limit=10))
        assert rows == 2
        assert await store.read().runs.count_by_status() == {QUEUED: rows}
    finally:
        await store.close()


async def test_a_database_of_a_newer_trigger_local_is_refused(tmp_path: Path) -> None:
    # its schema has migrations this code does not know: writing to it would go wrong
    path = tmp_path / "new.db"
    store = SqliteStore(str(path))
    await store.open()
    await store.close()
    with closing(sqlite3.connect(path)) as conn:
        conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    with pytest.raises(StartupError, match="newer than this trigger-local"):
        await SqliteStore(str(path)).open()


async def test_an_attempt_writes_no_index_but_its_key(tmp_path: Path) -> None:
    # the executing attempts' partial index lost its reader (attempts.open): an attempt's start
    # and end each rewrote it for nothing
    store = SqliteStore(str(tmp_path / "a.db"))
    await store.open()
    await store.close()
    with closing(sqlite3.connect(tmp_path / "a.db")) as conn:
        names = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'attempts' "
            "AND sql IS NOT NULL")]
    assert names == []
