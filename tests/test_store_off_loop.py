"""A long read does not stall the event loop (issue #17): a runs page the indexes cannot bound
(`search`) runs on a reader thread with its own connection, while the loop goes on. SQLite only
(the PostgreSQL store is asynchronous by nature)."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from contextlib import closing
from pathlib import Path
from typing import Any

from store_support import T0

from trigger_local.errors import DaemonStoppingError
from trigger_local.store import SqliteStore

ROWS = 100_000
STALL_LIMIT_MS = 20.0


async def _seeded(tmp_path: Path) -> SqliteStore:
    """A store with ROWS runs, written in one statement (the runs' content does not matter)."""
    path = tmp_path / "store.db"
    store = SqliteStore(str(path))
    await store.open()
    with closing(sqlite3.connect(path)) as conn:
        conn.execute(
            "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < ?) "
            "INSERT INTO runs (id, task_id, status, snapshot_id, snapshot_kind, queue, "
            "created_at, updated_at, queued_at, payload_type) SELECT printf('run_%06d', i), "
            "'hello', 'QUEUED', 's', 'queued', 'task/hello', ? + i, ? + i, ? + i, "
            "'application/json' FROM n", (ROWS - 1, T0, T0, T0))
        conn.commit()
    return store


async def _longest_stall_ms(work: asyncio.Future[Any]) -> float:
    """The longest the loop went without running a 1 ms ticker while `work` ran."""
    longest, last = 0.0, time.perf_counter()
    while not work.done():
        await asyncio.sleep(0.001)
        now = time.perf_counter()
        longest, last = max(longest, (now - last) * 1000), now
    return longest


async def test_a_scanning_page_runs_off_the_loop(tmp_path: Path) -> None:
    store = await _seeded(tmp_path)
    try:
        read = store.read().runs
        started = time.perf_counter()
        searches = asyncio.gather(*(read.page(search="nothing-matches") for _ in range(4)))
        stall = await _longest_stall_ms(searches)
        took_ms = (time.perf_counter() - started) * 1000
        assert await searches == [[], [], [], []]
        # on the loop, the loop would have stalled for one search at least (~half of this,
        # two reader threads); off it, it goes on (an OS scheduling hiccup aside)
        assert took_ms > 3 * STALL_LIMIT_MS, f"the searches took only {took_ms:.0f} ms"
        assert stall < max(STALL_LIMIT_MS, took_ms / 5), \
            f"the loop stalled {stall:.0f} ms (searches: {took_ms:.0f} ms)"
        # a bounded page (an index in order) stays on the loop and answers at once
        assert [r.id for r in await read.page(limit=2)] == ["run_099999", "run_099998"]
    finally:
        await store.close()


async def test_close_interrupts_a_long_read(tmp_path: Path) -> None:
    store = await _seeded(tmp_path)
    search = asyncio.ensure_future(store.read().runs.page(search="nothing-matches"))
    await asyncio.sleep(0.005)
    await store.close()
    try:
        await search
    except DaemonStoppingError:
        pass  # interrupted: the caller gets a 503, never a 500
