"""PostgreSQL's tags tables and per-status / per-queue counters (store/postgres/schema_lists.py,
migrations 7 and 9): a database made at any earlier schema version gets them filled from the
rows it has, and the store (counts.py) and the tags trigger keep them right afterwards. (The
contract suite checks the lists and counts on both backends; this checks the migrations from
every earlier version.)"""

from __future__ import annotations

import asyncpg
import pytest
from pg_cluster import Cluster, schema_at
from store_support import T0, insert_runs, make_run

from trigger_local.store.models import COMPLETED, EXECUTING, QUEUED, Queue
from trigger_local.store.postgres import PostgresStore
from trigger_local.store.postgres.schema import MIGRATIONS
from trigger_local.store.postgres.schema_lists import COUNTED_BY_STORE, LISTS

LISTS_VERSION = MIGRATIONS.index(LISTS) + 1
COUNTED_VERSION = MIGRATIONS.index(COUNTED_BY_STORE) + 1


async def at_version(url: str, version: int) -> None:
    """The schema as trigger-local made it at `version`, with a few runs and a token in it."""
    conn = await asyncpg.connect(url)
    try:
        async with conn.transaction():
            await schema_at(conn, version)
            for run_id, status, tags in (("run_a", QUEUED, '["red", "blue"]'),
                                         ("run_b", QUEUED, '["blue"]'),
                                         ("run_c", COMPLETED, "[]")):
                await conn.execute(
                    "INSERT INTO runs (id, task_id, status, snapshot_id, snapshot_kind, queue, "
                    "created_at, updated_at, queued_at, payload_type, tags) "
                    "VALUES ($1, 'hello', $2, $1, 'queued', 'task/hello', $3, $3, $3, "
                    "'application/json', $4)", run_id, status, T0, tags)
            await conn.execute("INSERT INTO waitpoints (id, type, status, created_at, tags) "
                               "VALUES ('waitpoint_a', 'MANUAL', 'WAITING', $1, '[\"red\"]')", T0)
    finally:
        await conn.close()


# (from COUNTED_VERSION on, the store counts what it writes: rows written around it, as here,
# are counted by no one)
@pytest.mark.parametrize("version", range(1, COUNTED_VERSION))
async def test_a_database_from_an_earlier_version_gets_its_tags_and_counts(
        pg_cluster: Cluster, version: int) -> None:
    url = pg_cluster.fresh_url()
    await at_version(url, version)
    store = PostgresStore(url)
    await store.open()  # migrates
    try:
        read = store.read()
        assert await read.runs.count_by_status() == {QUEUED: 2, COMPLETED: 1}
        assert {r.id for r in await read.runs.page(tags=["blue"])} == {"run_a", "run_b"}
        assert [r.id for r in await read.runs.page(tags=["red"])] == ["run_a"]
        tokens = await read.waitpoints.page(type_="MANUAL", tags=["red"])
        assert [w.id for w in tokens] == ["waitpoint_a"]
        # and the store and the tags trigger keep them from now on
        await insert_runs(store, make_run("run_d", tags=["red"], at=T0 + 1))
        async with store.tx() as ops:
            assert await ops.runs.update("run_a", "run_a", status=EXECUTING,
                                         snapshot_id="s2", tags=["green"])
        assert await read.runs.count_by_status() == {QUEUED: 2, COMPLETED: 1, EXECUTING: 1}
        assert [r.id for r in await read.runs.page(tags=["red"])] == ["run_d"]
        assert [r.id for r in await read.runs.page(tags=["green"])] == ["run_a"]
    finally:
        await store.close()


async def test_counts_stay_right_when_two_stores_move_runs_at_once(pg_cluster: Cluster) -> None:
    """Each connection counts into its own shard: the sums stay exact."""
    url = pg_cluster.fresh_url()
    a, b = PostgresStore(url, daemon_id="a"), PostgresStore(url, daemon_id="b")
    await a.open()
    await b.open()
    try:
        await insert_runs(a, *(make_run(f"run_{n}") for n in range(20)))

        async def finish(store: PostgresStore, run_id: str) -> None:
            async with store.tx() as ops:
                assert await ops.runs.update(run_id, f"snapshot_{run_id}", status=COMPLETED,
                                             snapshot_id=f"done_{run_id}")

        for n in range(0, 20, 2):  # one run through each store, their transactions open at once
            async with a.tx() as ops_a:
                assert await ops_a.runs.update(f"run_{n}", f"snapshot_run_{n}",
                                               status=COMPLETED, snapshot_id="x")
                await finish(b, f"run_{n + 1}")
        assert await a.read().runs.count_by_status() == {COMPLETED: 20}
    finally:
        await a.close()
        await b.close()


async def test_status_changes_are_counted_by_the_store_with_the_commit(pg_cluster: Cluster) -> None:
    """No trigger counts an insert or a status change since migration 9: the transaction sums
    them and writes them with its commit; inside it, counts include what it has not written, a
    savepoint rolled back takes its deltas with it, and a deletion is still counted."""
    url = pg_cluster.fresh_url()
    store = PostgresStore(url)
    await store.open()
    try:
        conn = await asyncpg.connect(url)
        try:
            triggers = await conn.fetch("SELECT tgname FROM pg_trigger WHERE tgrelid = "
                                        "'runs'::regclass AND NOT tgisinternal")
            assert {t["tgname"] for t in triggers} == {"runs_counts", "runs_tags"}
        finally:
            await conn.close()
        async with store.tx() as ops:
            await ops.queues.insert(Queue(name="task/hello", id="queue_hello", type="task",
                                          concurrency_limit=None, paused=False, created_at=T0))
            await ops.runs.insert(make_run("run_a"))
            await ops.runs.insert(make_run("run_b"))
            assert await ops.runs.update("run_a", "snapshot_run_a", status=EXECUTING,
                                         snapshot_id="s2")
            assert await ops.runs.count_by_status() == {QUEUED: 1, EXECUTING: 1}
            with pytest.raises(RuntimeError):
                async with ops.savepoint():
                    assert await ops.runs.update("run_b", "snapshot_run_b", status=COMPLETED,
                                                 snapshot_id="s3")
                    raise RuntimeError("undone")
            # a compare-and-set that fails moves nothing
            assert not await ops.runs.update("run_b", "stale", status=COMPLETED)
            [queue] = await ops.queues.all()
            assert (queue.running, queue.queued) == (1, 1)
        assert await store.read().runs.count_by_status() == {QUEUED: 1, EXECUTING: 1}
        [queue] = await store.read().queues.all()
        assert (queue.running, queue.queued) == (1, 1)
        async with store.tx() as ops:
            assert await ops.runs.delete_many(["run_a"]) == 1
        assert await store.read().runs.count_by_status() == {QUEUED: 1}
    finally:
        await store.close()
