"""The SQLite store's WAL is checkpointed by a thread of its own in a quiet moment between
commits, not inside a request's COMMIT (store/sqlite/wal.py, issue #13: on an idle daemon the
commit that met SQLite's 1,000-page checkpoint, often a trigger's or a start's, took 3–13 ms).
No timing is asserted: what runs where."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from pathlib import Path

from store_support import make_run

from tests.engine_support import T0, open_engine
from trigger_local.clock import FakeClock
from trigger_local.engine import TriggerRequest
from trigger_local.store import SqliteStore
from trigger_local.store.models import TaskDef
from trigger_local.store.sqlite.wal import EVERY


async def test_the_thread_checkpoints_in_a_quiet_moment_and_stops_with_the_store(
        tmp_path: Path) -> None:
    engine = await open_engine(tmp_path, FakeClock(T0),
                               tasks=[TaskDef(task_id="hello", queue="task/hello")])
    store = engine.store
    assert isinstance(store, SqliteStore) and store._wal is not None
    wal = store._wal
    for _ in range(EVERY + 5):  # past EVERY commits, then nothing: a quiet moment
        await engine.trigger(TriggerRequest(task_id="hello"))
    deadline = asyncio.get_running_loop().time() + 60  # generous: CI runs under load
    while wal.checkpointed == 0:
        assert asyncio.get_running_loop().time() < deadline, "the WAL was never checkpointed"
        await asyncio.sleep(0.01)
    await store.close()
    assert not wal._thread.is_alive()
    runs = sqlite3.connect(tmp_path / "engine.db").execute("SELECT count(*) FROM runs").fetchone()
    assert runs[0] == EVERY + 5


def _temp_files() -> list[str]:
    """SQLite's temporary files open in this process (it unlinks them at once: `(deleted)`)."""
    out = []
    for fd in Path("/proc/self/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue  # closed meanwhile
        if "etilqs_" in target:
            out.append(target)
    return out


async def test_a_savepoint_keeps_its_sub_journal_in_memory(tmp_path: Path) -> None:
    """A group commit runs each part in a savepoint, and a 500-run batch is one part: the
    pages it changes are copied to the savepoint's sub-journal, which SQLite spills to a
    temporary file past 64 KiB — a write system call per page (~25 a run, issue #13). The
    writer keeps it in memory: no temporary file, however large the part."""
    store = SqliteStore(str(tmp_path / "sub.db"))
    await store.open()
    try:
        async with store.tx() as ops, ops.savepoint():
            await ops.runs.insert_many([make_run(f"run_{i:05d}", payload="x" * 200)
                                        for i in range(2000)])
            assert _temp_files() == []
        assert await store.read().runs.count_by_status() == {"QUEUED": 2000}
    finally:
        await store.close()
