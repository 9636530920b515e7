"""Two daemons' transactions on one PostgreSQL database at once (docs/scaling.md): independent
ones run side by side, conflicting ones are refused and lose nothing when run again, exclusive
ones (the dequeue) run one at a time and see each other, and event numbers follow the commit
order, so a reader that follows a cursor never skips an event that committed late."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import pytest
from pg_cluster import Cluster
from store_support import T0, insert_runs, make_run

from trigger_local.errors import TransactionRetryError
from trigger_local.store.models import DEQUEUED
from trigger_local.store.postgres import PostgresStore

DEADLINE_S = 60.0  # generous: the machine is shared and loaded


@pytest.fixture
async def pair(pg_cluster: Cluster) -> AsyncIterator[tuple[PostgresStore, PostgresStore]]:
    """Two stores on one schema: two daemons."""
    url = pg_cluster.fresh_url()
    a, b = PostgresStore(url, daemon_id="daemon_a"), PostgresStore(url, daemon_id="daemon_b")
    await a.open()
    await b.open()
    yield a, b
    await a.close()
    await b.close()


async def until(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Wait for `check()` to be true, up to DEADLINE_S."""
    loop = asyncio.get_running_loop()
    end = loop.time() + DEADLINE_S
    while not await check():
        if loop.time() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def waiting_for_a_lock(store: PostgresStore) -> bool:
    async with store._pool.acquire() as conn:
        return bool(await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND query LIKE '%UPDATE runs%')"))


async def test_another_daemons_transaction_commits_while_one_is_open(
        pair: tuple[PostgresStore, PostgresStore]) -> None:
    """No lock around every transaction: b writes and commits while a's transaction is open
    (with one global lock, b would wait for a's commit, which waits for b: a timeout)."""
    a, b = pair
    async with a.tx() as ops:
        await ops.kv.set("a", "1")

        async def other() -> None:
            async with b.tx() as other_ops:
                await other_ops.kv.set("b", "1")

        await asyncio.wait_for(other(), DEADLINE_S)
        assert await b.read().kv.get("b") == "1"
        assert await b.read().kv.get("a") is None  # a has not committed yet
    assert await b.read().kv.get("a") == "1"


async def bump(store: PostgresStore, *, exclusive: bool = False) -> int:
    """A read-modify-write of one counter, run again when refused; returns the refusals."""
    refused = 0
    while True:
        try:
            async with store.tx(exclusive) as ops:
                value = int(await ops.kv.get("n") or 0)
                await asyncio.sleep(0.005)  # the other store's transaction gets every chance
                await ops.kv.set("n", str(value + 1))
            return refused
        except TransactionRetryError:
            refused += 1


async def test_conflicting_transactions_are_refused_and_lose_nothing_when_run_again(
        pair: tuple[PostgresStore, PostgresStore]) -> None:
    a, b = pair
    await asyncio.wait_for(asyncio.gather(*(bump(s) for s in (a, b) * 10)), DEADLINE_S)
    assert await a.read().kv.get("n") == "20"


async def test_exclusive_transactions_run_one_at_a_time_and_are_never_refused(
        pair: tuple[PostgresStore, PostgresStore]) -> None:
    """The dequeue's kind: each waits for the one before and sees its writes (the lock is taken
    before the snapshot), so two daemons' dequeues never refuse each other."""
    a, b = pair
    refusals = await asyncio.wait_for(
        asyncio.gather(*(bump(s, exclusive=True) for s in (a, b) * 10)), DEADLINE_S)
    assert await a.read().kv.get("n") == "20"
    assert refusals == [0] * 20



async def take(store: PostgresStore, run_id: str, seen: list[int],
               hold: Awaitable[object]) -> None:
    """A dequeue's shape: its first reads (the running counts), then a run made DEQUEUED."""
    async with store.tx(exclusive=True) as ops:
        seen.append(sum((await ops.runs.running_counts()).values()))
        await ops.runs.update(run_id, None, status=DEQUEUED)
        await hold


async def test_a_dequeue_begun_by_the_last_commit_sees_the_one_before_in_its_first_reads(
        pair: tuple[PostgresStore, PostgresStore], pg_cluster: Cluster) -> None:
    """The lock and the first reads go in one round trip (sql.py `_dequeue_read`); the reads
    are still those of a snapshot taken once the lock is held: b, waiting for a's lock, counts
    the run a took."""
    a, b = pair
    await insert_runs(a, make_run("run_a"), make_run("run_b"))
    for store in (a, b):  # a commit of each store begins its next exclusive transaction
        async with store.tx(exclusive=True) as ops:
            await ops.runs.running_counts()
    seen: list[int] = []
    release = asyncio.Event()
    first = asyncio.create_task(take(a, "run_a", seen, release.wait()))
    await until(lambda: _true(len(seen) == 1), "a's first reads")
    second = asyncio.create_task(take(b, "run_b", seen, asyncio.sleep(0)))
    spy = await asyncpg.connect(pg_cluster.url)
    try:
        await until(lambda: _waiting_for_a_lock(spy), "b to wait for a's lock")
    finally:
        await spy.close()
    release.set()
    await asyncio.wait_for(asyncio.gather(first, second), DEADLINE_S)
    assert seen == [0, 1]


async def _true(value: bool) -> bool:
    return value


async def _waiting_for_a_lock(spy: asyncpg.Connection) -> bool:
    return bool(await spy.fetchval(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'relation' AND NOT granted"))


async def test_an_event_committed_late_is_not_skipped_by_a_cursor(
        pair: tuple[PostgresStore, PostgresStore]) -> None:
    """a appends an event and stays open; b appends one and commits meanwhile (without waiting
    for a: an event's number is drawn at its transaction's commit); a reader follows the stream
    with a cursor (as the SSE stream and `events.after` do) and reads b's event. a's event,
    committed later, must get a higher number: else the reader's cursor, past b's number, would
    never read it."""
    a, b = pair
    seen: list[tuple[int, str | None]] = []
    first_appended, release_first = asyncio.Event(), asyncio.Event()

    async def first() -> None:
        async with a.tx() as ops:
            await ops.events.append("run_a", "run.created", T0, {})
            first_appended.set()
            await release_first.wait()

    async def second() -> None:
        async with b.tx() as ops:
            await ops.events.append("run_b", "run.created", T0, {})

    async def follow(count: int) -> None:
        cursor = seen[-1][0] if seen else 0
        while len(seen) < count:
            for event in await a.read().events.after(cursor):
                seen.append((event.seq, event.run_id))
                cursor = event.seq
            await asyncio.sleep(0.01)

    first_task = asyncio.create_task(first())
    try:
        await asyncio.wait_for(first_appended.wait(), DEADLINE_S)
        # a is still open: b does not wait for it
        await asyncio.wait_for(second(), DEADLINE_S / 4)
        await asyncio.wait_for(follow(1), DEADLINE_S)
        assert [run_id for _, run_id in seen] == ["run_b"]
    finally:
        release_first.set()  # else a stays open and the stores cannot close
    await asyncio.wait_for(first_task, DEADLINE_S)
    await asyncio.wait_for(follow(2), DEADLINE_S)
    assert [run_id for _, run_id in seen] == ["run_b", "run_a"]


async def test_a_dequeues_move_of_a_run_it_locked_goes_with_its_commit(
        pair: tuple[PostgresStore, PostgresStore]) -> None:
    """A run the dequeue took (`queued`: FOR UPDATE, read committed) cannot change before its
    commit: its compare-and-set succeeds, and the UPDATE goes with the COMMIT (runs.py). Another
    daemon's change of that run waits for the commit and then finds it moved; a
    compare-and-set on a snapshot the run is not at is sent, and says so."""
    a, b = pair
    await insert_runs(a, make_run("run_a"), make_run("run_b"))
    async with a.tx(exclusive=True) as ops:
        taken = await ops.runs.queued("proj_local", "task/hello", 5)
        assert [r.id for r in taken] == ["run_a", "run_b"]
        assert await ops.runs.update("run_a", "snapshot_run_a", status=DEQUEUED,
                                     snapshot_id="s_a")
        assert not await ops.runs.update("run_b", "not_its_snapshot", status=DEQUEUED)
        # the transaction sees its own move (the kept UPDATE is sent before a read of runs)
        seen = await ops.runs.get("run_a")
        assert seen is not None and (seen.status, seen.snapshot_id) == (DEQUEUED, "s_a")
        assert await ops.runs.update("run_a", "s_a", status="EXECUTING", snapshot_id="s_a2")

        async def cancel() -> bool:
            try:
                async with b.tx() as other:
                    return await other.runs.update("run_a", "snapshot_run_a",
                                                   status="CANCELED")
            except TransactionRetryError:  # refused: run again, it would find the run moved
                return False
        canceling = asyncio.ensure_future(cancel())
        await until(lambda: waiting_for_a_lock(a), "the other daemon's UPDATE to wait")
    assert not await asyncio.wait_for(canceling, DEADLINE_S)
    run = await a.read().runs.get("run_a")
    assert run is not None and (run.status, run.snapshot_id) == ("EXECUTING", "s_a2")
    assert await a.read().runs.count_by_status() == {"QUEUED": 1, "EXECUTING": 1}
