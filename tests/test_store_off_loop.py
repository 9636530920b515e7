"""A long read does not stall the event loop (issue #17): a runs page the indexes cannot bound
(`search`) runs on a reader thread with its own connection, while the loop goes on. SQLite only
(the PostgreSQL store is asynchronous by nature)."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from contextlib import closing
from pathlib import Path
from typing import Any

from store_support import RECOUNT_SQL, T0

from trigger_local.errors import DaemonStoppingError
from trigger_local.store import SqliteStore
from trigger_local.store.sqlite.store import RECLAIM_PAGES

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
        conn.executescript(RECOUNT_SQL)  # the seeded runs counted, as an upgraded database's are
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


async def _with_free_pages(tmp_path: Path) -> SqliteStore:
    """A seeded store whose runs were then deleted: thousands of free pages to reclaim."""
    store = await _seeded(tmp_path)
    with closing(sqlite3.connect(store.path)) as conn:
        conn.execute("DELETE FROM runs")
        conn.commit()
    return store


def _free(store: SqliteStore) -> int:
    with closing(sqlite3.connect(store.path)) as conn:
        return int(conn.execute("PRAGMA freelist_count").fetchone()[0])


async def test_reclaim_runs_on_a_thread_a_bounded_amount_a_call(tmp_path: Path) -> None:
    store = await _with_free_pages(tmp_path)
    threads: set[int] = set()
    try:
        before = _free(store)
        assert before > 3 * RECLAIM_PAGES
        assert store._writer is not None
        store._writer.set_trace_callback(
            lambda sql: threads.add(threading.get_ident()) if "vacuum" in sql else None)
        left = await store.reclaim()
        assert left == _free(store) == before - RECLAIM_PAGES
        assert threads and threading.get_ident() not in threads  # not on the loop's thread
    finally:
        await store.close()


async def test_a_cancelled_reclaim_keeps_the_writer_until_its_thread_is_done(
        tmp_path: Path) -> None:
    store = await _with_free_pages(tmp_path)
    entered, go = threading.Event(), threading.Event()

    def hold(sql: str) -> None:  # keeps the thread inside the pragma until the test says go
        if "incremental_vacuum" in sql:
            entered.set()
            go.wait(30)

    try:
        assert store._writer is not None
        store._writer.set_trace_callback(hold)
        reclaim = asyncio.ensure_future(store.reclaim())
        assert await asyncio.to_thread(entered.wait, 30)
        reclaim.cancel()
        await asyncio.sleep(0.05)
        # the thread still holds the writer: a transaction waits instead of sharing it
        tx = asyncio.ensure_future(_one_write(store))
        await asyncio.sleep(0.05)
        assert not tx.done()
        go.set()
        try:
            await reclaim
        except asyncio.CancelledError:
            pass
        store._writer.set_trace_callback(None)
        await asyncio.wait_for(tx, 30)  # then it runs, on a writer that is in no transaction
    finally:
        go.set()
        await store.close()


async def test_close_stops_a_running_reclaim(tmp_path: Path) -> None:
    store = await _with_free_pages(tmp_path)
    entered, go = threading.Event(), threading.Event()

    def hold(sql: str) -> None:
        if "incremental_vacuum" in sql:
            entered.set()
            go.wait(30)

    assert store._writer is not None
    store._writer.set_trace_callback(hold)
    reclaim = asyncio.ensure_future(store.reclaim())
    assert await asyncio.to_thread(entered.wait, 30)
    closing_ = asyncio.ensure_future(store.close())
    await asyncio.sleep(0.05)
    assert not closing_.done()  # it waits for the thread instead of closing under it
    go.set()
    await asyncio.wait_for(closing_, 30)
    assert await reclaim == 0  # interrupted by close: no error, the pages stay free


async def _one_write(store: SqliteStore) -> None:
    async with store.tx() as ops:
        await ops.kv.set("reclaim-test", "1")
