"""WAL checkpoints run on a thread, not inside a COMMIT on the event loop (issue #13,
store/sqlite/checkpointer.py): the writer never checkpoints, yet what the transactions commit
reaches the database file itself soon after, and closing the store stops the thread."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import threading
import time
from contextlib import closing
from pathlib import Path

from store_support import make_run

from trigger_local.store import SqliteStore
from trigger_local.store.sqlite.checkpointer import EVERY_COMMITS


def _runs_in_the_file_alone(db: Path, copy: Path) -> int:
    """Runs in the database file without its write-ahead log: what checkpoints copied there."""
    shutil.copyfile(db, copy)
    try:
        with closing(sqlite3.connect(copy)) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0])
    except sqlite3.DatabaseError:  # not there yet (the schema too is in the log), or copied
        return 0  # while a checkpoint wrote it: look again


async def test_commits_reach_the_file_through_the_checkpoint_thread(tmp_path: Path) -> None:
    db = tmp_path / "trigger-local.db"
    store = SqliteStore(str(db))
    await store.open()
    try:
        writer = store._writer
        assert writer is not None
        # a COMMIT on the loop never copies the log into the file
        assert writer.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
        assert any(t.name == "sqlite-checkpoint" for t in threading.enumerate())
        n = 2 * EVERY_COMMITS
        for i in range(n):
            async with store.tx() as ops:
                await ops.runs.insert(make_run(f"run_{i:04d}"))
        deadline = time.monotonic() + 60  # generous: the machine may be loaded
        while _runs_in_the_file_alone(db, tmp_path / "copy.db") < EVERY_COMMITS:
            assert time.monotonic() < deadline, "no checkpoint reached the database file"
            await asyncio.sleep(0.05)
        assert len(await store.read().runs.page(limit=1000)) == n
    finally:
        await store.close()
    assert not any(t.name == "sqlite-checkpoint" for t in threading.enumerate())
    assert _runs_in_the_file_alone(db, tmp_path / "copy.db") == n  # closed: all of it
