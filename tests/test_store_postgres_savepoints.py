"""A transaction's parts on PostgreSQL (store/postgres/store.py `PgView.savepoint`): a part
rolled back undoes its own writes only. The writes an earlier part kept for the commit
(pending.py: a run's insert, an event, the counters' deltas) are sent before a later part's
SAVEPOINT — sent by one of that part's statements, its ROLLBACK TO SAVEPOINT undid them too, and
the counters drifted for good. Real PostgreSQL (tests/pg_cluster.py)."""

from __future__ import annotations

from typing import Any

import asyncpg
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


async def test_a_part_that_only_keeps_writes_sends_no_savepoint_and_forgets_them_undone(
        pg_cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    """A part's SAVEPOINT is held back until one of its statements is sent (view.py): a part
    that only keeps writes for the commit sends none, and undone, forgets what it kept; a part
    whose statement is sent after it kept writes sends the SAVEPOINT before them, so they are
    undone with it and what earlier parts kept is not."""
    store = PostgresStore(pg_cluster.fresh_url())
    await store.open()
    sent: list[str] = []
    try:
        await insert_runs(store, make_run("run_a"))
        async with store.tx() as tx:
            await tx.runs.get("run_a")  # a statement sent: later parts are not the first
            real = asyncpg.Connection.execute

            async def recording(self: asyncpg.Connection, query: str, *args: Any,
                                **kwargs: Any) -> str:
                sent.append(query)
                return await real(self, query, *args, **kwargs)
            monkeypatch.setattr(asyncpg.Connection, "execute", recording)
            await tx.runs.insert(make_run("run_b"))  # kept by the transaction, before a part
            with pytest.raises(RuntimeError):
                async with tx.savepoint():  # keeps only, then fails
                    await tx.runs.insert(make_run("run_c"))
                    raise RuntimeError("undone")
            assert not any("SAVEPOINT" in q for q in sent), sent
            with pytest.raises(RuntimeError):
                async with tx.savepoint():  # keeps, then sends, then fails
                    await tx.runs.insert(make_run("run_d"))
                    assert await tx.runs.update("run_a", None, status=EXECUTING)
                    raise RuntimeError("undone after a statement")
            assert any("SAVEPOINT" in q for q in sent), sent
            async with tx.savepoint():  # keeps only, ends well: goes with the commit
                await tx.runs.insert(make_run("run_e"))
        read = store.read()
        found = {r.id for r in await read.runs.get_many(["run_a", "run_b", "run_c", "run_d",
                                                         "run_e"])}
        assert found == {"run_a", "run_b", "run_e"}
        assert (await read.runs.get("run_a")).status == QUEUED
        assert await read.runs.count_by_status() == {QUEUED: 3}
    finally:
        await store.close()


async def test_a_part_rolled_back_undoes_its_environment_variable(pg_cluster: Cluster) -> None:
    # review rv9d: env_vars.put went on the connection, past PgSql: sent before the part's
    # held-back SAVEPOINT, the part's rollback did not undo it
    store = PostgresStore(pg_cluster.fresh_url())
    await store.open()
    try:
        async with store.tx() as tx:
            await tx.runs.get("run_a")  # the transaction has begun: the part's SAVEPOINT is held
            with pytest.raises(RuntimeError):
                async with tx.savepoint():
                    await tx.env_vars.put("proj", "dev", "NAME", "v", False, 1.0)
                    raise RuntimeError("the part fails")
            await tx.env_vars.put("proj", "dev", "KEPT", "k", None, 1.0)
            await tx.env_vars.put("proj", "dev", "KEPT", "x", True, 2.0, override=False)
        read = store.read()
        assert await read.env_vars.get("proj", "dev", "NAME") is None
        assert await read.env_vars.get("proj", "dev", "KEPT") == {
            "name": "KEPT", "value": "k", "isSecret": False}
    finally:
        await store.close()
