"""The SQLite store's WAL is checkpointed by a thread of its own, not inside a request's COMMIT
(store/sqlite/wal.py, issue #13: the commit that met SQLite's 1,000-page checkpoint took
3–13 ms, most of trigger→start's p99). No timing is asserted: what runs where."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from tests.engine_support import T0, open_engine
from trigger_local.clock import FakeClock
from trigger_local.engine import Engine, TriggerRequest
from trigger_local.store import SqliteStore
from trigger_local.store.models import TaskDef
from trigger_local.store.sqlite.wal import BACKSTOP_PAGES


async def engine_at(tmp_path: Path) -> Engine:
    return await open_engine(tmp_path, FakeClock(T0), tasks=[TaskDef(task_id="hello",
                                                                     queue="task/hello")])


async def test_commits_past_a_thousand_pages_do_not_checkpoint(tmp_path: Path) -> None:
    engine = await engine_at(tmp_path)
    store = engine.store
    assert isinstance(store, SqliteStore) and store._wal is not None
    store._wal._every = 10**9  # the thread never checkpoints here: what do commits do?
    try:
        for _ in range(150):  # some 18 pages each: past SQLite's 1,000-page checkpoint
            await engine.trigger(TriggerRequest(task_id="hello"))
        conn = sqlite3.connect(tmp_path / "engine.db")
        try:
            conn.execute("PRAGMA wal_autocheckpoint=0")
            assert store._writer is not None
            writer_setting = store._writer.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
            _, log, _ = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        finally:
            conn.close()
        assert writer_setting == BACKSTOP_PAGES
        assert 1000 < log < BACKSTOP_PAGES  # one WAL from the start: no commit checkpointed it
    finally:
        await store.close()


async def test_the_thread_checkpoints_after_commits_and_stops_with_the_store(
        tmp_path: Path) -> None:
    engine = await engine_at(tmp_path)
    store = engine.store
    assert isinstance(store, SqliteStore) and store._wal is not None
    wal = store._wal
    for _ in range(60):  # past EVERY commits
        await engine.trigger(TriggerRequest(task_id="hello"))
    deadline = asyncio.get_running_loop().time() + 60  # generous: CI runs under load
    while wal.checkpointed == 0:
        assert asyncio.get_running_loop().time() < deadline, "the WAL was never checkpointed"
        await asyncio.sleep(0.01)
    await store.close()
    assert not wal._thread.is_alive()
    run = sqlite3.connect(tmp_path / "engine.db").execute("SELECT count(*) FROM runs").fetchone()
    assert run[0] == 60
