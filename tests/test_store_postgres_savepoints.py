"""A transaction's parts on PostgreSQL (store/postgres/store.py `PgView.savepoint`): a part
rolled back undoes its own writes only. The writes an earlier part kept for the commit
(pending.py: a run's insert, an event, the counters' deltas) are sent before a later part's
SAVEPOINT — sent by one of that part's statements, its ROLLBACK TO SAVEPOINT undid them too, and
the counters drifted for good. Real PostgreSQL (tests/pg_cluster.py)."""

from __future__ import annotations

import pytest
from pg_cluster import Cluster
from store_support import insert_runs, make_run

from trigger_local.store.models import EXECUTING, QUEUED
from trigger_local.store.postgres import PostgresStore


async def test_a_part_rolled_back_keeps_an_earlier_parts_counts(pg_cluster: Cluster) -> None:
    store = PostgresStore(pg_cluster.fresh_url())
    await store.open()
    try:
        await insert_runs(store, make_run("run_a"))
        async with store.tx() as tx:
            async with tx.savepoint():  # a start: the move is sent, its event kept
                assert await tx.runs.update("run_a", None, status=EXECUTING)
                await tx.events.append("run_a", "run.executing", 1.0, {})
            with pytest.raises(RuntimeError):
                async with tx.savepoint():  # reads events (sends the kept), then fails
                    await tx.events.after(0, run_id="run_b")
                    raise RuntimeError("the second part fails")
        read = store.read()
        assert (await read.runs.get("run_a")).status == EXECUTING
        assert await read.runs.count_by_status() == {EXECUTING: 1}
        assert [e.type for e in await read.events.after(0, run_id="run_a")] == ["run.executing"]
    finally:
        await store.close()


@pytest.mark.parametrize("first_sent", [False, True], ids=["nothing_sent", "a_read_sent"])
async def test_a_kept_insert_survives_a_later_part_rolled_back(pg_cluster: Cluster,
                                                               first_sent: bool) -> None:
    store = PostgresStore(pg_cluster.fresh_url())
    await store.open()
    try:
        async with store.tx() as tx:
            async with tx.savepoint():  # a run's insert, kept for the commit
                if first_sent:  # a statement sent: the later part takes a real SAVEPOINT
                    await tx.runs.get("run_first")
                await tx.runs.insert(make_run("run_a"))
            with pytest.raises(RuntimeError):
                async with tx.savepoint():  # reads runs (sends the kept insert), then fails
                    await tx.runs.get("run_zzz")
                    raise RuntimeError("the second part fails")
        read = store.read()
        assert await read.runs.get("run_a") is not None, "the first part's run was lost"
        assert await read.runs.count_by_status() == {QUEUED: 1}
    finally:
        await store.close()


async def test_a_count_in_a_transaction_counts_its_unsent_changes_once(
        pg_cluster: Cluster) -> None:
    store = PostgresStore(pg_cluster.fresh_url())
    await store.open()
    try:
        async with store.tx() as tx:
            await tx.runs.insert(make_run("run_a"))
            assert await tx.runs.count_by_status() == {QUEUED: 1}
        assert await store.read().runs.count_by_status() == {QUEUED: 1}
    finally:
        await store.close()


async def test_a_part_that_ended_well_is_released_without_a_round_trip_of_its_own(
        pg_cluster: Cluster) -> None:
    """A part's RELEASE goes with the next statements sent together (or the COMMIT): parts in
    a row, a part inside a part, and an outer part rolled back after its inner one ended well
    (its RELEASE, pending, must not be sent: the savepoint is gone) all commit what they
    should."""
    store = PostgresStore(pg_cluster.fresh_url())
    await store.open()
    try:
        await insert_runs(store, *(make_run(f"run_{n}") for n in "abcd"))
        async with store.tx() as tx:
            await tx.runs.get("run_a")  # a statement sent: each part takes a real SAVEPOINT
            async with tx.savepoint():
                assert await tx.runs.update("run_a", None, status=EXECUTING)
            with pytest.raises(RuntimeError):
                async with tx.savepoint():
                    async with tx.savepoint():  # inside: ends well, its RELEASE pending
                        assert await tx.runs.update("run_b", None, status=EXECUTING)
                    raise RuntimeError("the outer part fails: the inner one is undone too")
            async with tx.savepoint():  # after the outer part's rollback
                async with tx.savepoint():
                    assert await tx.runs.update("run_c", None, status=EXECUTING)
                assert await tx.runs.update("run_d", None, status=EXECUTING)
        read = store.read()
        runs = await read.runs.get_many([f"run_{n}" for n in "abcd"])
        statuses = {r.id.removeprefix("run_"): r.status for r in runs}
        assert statuses == {"a": EXECUTING, "b": QUEUED, "c": EXECUTING, "d": EXECUTING}
        assert await read.runs.count_by_status() == {EXECUTING: 3, QUEUED: 1}
    finally:
        await store.close()
