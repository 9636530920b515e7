"""A trigger that starts its run reads ahead on PostgreSQL (store/postgres/start_reads.py, issue
#14): its queue's row and the dequeue's six reads in one call, the page of a queue that had no
queued run answered from the run it inserts, the run's INSERT and its start's UPDATE sent as one
INSERT with the commit (pending.py `Fold`), and a part that only keeps writes sends no SAVEPOINT
(view.py). What the dequeue decides must be what reading in the engine's order decides: these
compare the committed rows, the counters and the rules with the paths that read the database.
Real PostgreSQL (tests/pg_cluster.py); the executor's side is a recording fake (an edge)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from pg_cluster import Cluster

from tests.engine_support import T0, open_engine
from tests.test_engine_pg_start_at_once import Places
from trigger_local.clock import FakeClock
from trigger_local.config import DaemonSettings
from trigger_local.engine import AttemptOutcome, Engine, TriggerRequest
from trigger_local.store.models import EXECUTING, QUEUED, TaskDef
from trigger_local.store.postgres import PostgresStore, start_reads

TASKS = [TaskDef(task_id="hello", queue="task/hello", shared=True),
         TaskDef(task_id="other", queue="task/other", shared=True),
         TaskDef(task_id="one", queue="task/one", queue_concurrency_limit=1, shared=True)]


async def opened_engine(url: str, home: Path) -> Engine:
    store = PostgresStore(url, daemon_id="daemon_a")
    await store.open()
    engine = await open_engine(home, FakeClock(T0), store=store, tasks=TASKS)
    engine.ctx.placer = Places("a")
    return engine


@pytest.fixture
async def engine(pg_cluster: Cluster, tmp_path: Path) -> AsyncIterator[Engine]:
    engine = await opened_engine(pg_cluster.fresh_url(), tmp_path)
    yield engine
    await engine.store.close()


async def row_of(engine: Engine, run_id: str) -> asyncpg.Record:
    store = engine.store
    assert isinstance(store, PostgresStore)
    async with store._pool.acquire() as conn:  # noqa: SLF001 - the row as stored
        return await conn.fetchrow("SELECT status, daemon_id, worker_id, attempt_count "
                                   "FROM runs WHERE id = $1", run_id)


async def test_a_run_started_in_its_trigger_is_stored_as_a_dispatched_ones(
        engine: Engine) -> None:
    """One INSERT of the run as it is once started (its UPDATE folded in): its status, the
    daemon holding it, its process, its attempt; the counters and its tags as after an
    INSERT and an UPDATE."""
    result = await engine.trigger(TriggerRequest(task_id="hello", tags=["t1"]))
    assert result.run.status == EXECUTING
    row = await row_of(engine, result.run.id)
    assert dict(row) == {"status": EXECUTING, "daemon_id": "daemon_a",
                         "worker_id": "worker_a", "attempt_count": 1}
    read = engine.store.read()
    assert await read.runs.count_by_status() == {EXECUTING: 1}
    assert [r.id for r in (await read.runs.page(tags=["t1"]))] == [result.run.id]
    [attempt] = await read.attempts.for_run(result.run.id)
    assert attempt.number == 1
    history = [e.type for e in await read.events.after(0) if e.run_id == result.run.id]
    assert history == ["run.created", "run.executing"]
    done = await engine.finish_attempt(result.run.id, 1, AttemptOutcome(ok=True))
    assert done.status == "COMPLETED"


async def test_a_trigger_behind_a_run_queued_in_another_queue_leaves_its_run_queued(
        engine: Engine) -> None:
    """Another queue had a queued run at the snapshot: its page is read from the database
    (the kept INSERT and the part's SAVEPOINT go first), the older run is taken, so the part
    is undone and the new run stays QUEUED — once, counted once."""
    places = engine.ctx.placer
    assert isinstance(places, Places)
    places.likely = False
    older = await engine.trigger(TriggerRequest(task_id="other"))
    places.likely = True
    clock = engine.clock
    assert isinstance(clock, FakeClock)
    clock.advance(1)  # queued later: at one instant the order is the ids', random within 1 ms
    newer = await engine.trigger(TriggerRequest(task_id="hello"))
    assert newer.run.status == QUEUED
    assert (await row_of(engine, newer.run.id))["status"] == QUEUED
    assert (await row_of(engine, older.run.id))["status"] == QUEUED
    assert await engine.store.read().runs.count_by_status() == {QUEUED: 2}
    assert places.released() == [newer.run.id]


async def test_a_concurrency_key_at_its_limit_keeps_the_new_run_queued(engine: Engine) -> None:
    """The page answered from the new run ranks it by its concurrency key as the database's
    page would; the dequeue then counts the key's running runs."""
    first = await engine.trigger(TriggerRequest(task_id="one", concurrency_key="a"))
    assert first.run.status == EXECUTING
    same_key = await engine.trigger(TriggerRequest(task_id="one", concurrency_key="a"))
    assert same_key.run.status == QUEUED
    other_key = await engine.trigger(TriggerRequest(task_id="one", concurrency_key="b"))
    assert other_key.run.status == EXECUTING
    assert await engine.store.read().runs.count_by_status() == {EXECUTING: 2, QUEUED: 1}


async def test_a_role_without_temp_starts_its_run_in_its_trigger_too(
        pg_cluster: Cluster, tmp_path: Path) -> None:
    """A role that may not make temporary objects gets neither function (store.py `_held`):
    the dequeue and the trigger that starts its run read in the engine's order, and work."""
    name = f"notemp{os.getpid()}_{tmp_path.name[-8:]}".lower().replace("-", "_")
    pg_cluster.psql(f"CREATE ROLE {name} LOGIN")
    pg_cluster.psql(f"CREATE DATABASE {name}")  # owned by postgres: its owner may make TEMP
    pg_cluster.psql(f"REVOKE TEMP ON DATABASE {name} FROM PUBLIC")
    base = pg_cluster.url.rsplit("/", 1)[0]
    conn = await asyncpg.connect(f"{base}/{name}")
    try:
        await conn.execute(f"CREATE SCHEMA s AUTHORIZATION {name}")
    finally:
        await conn.close()
    url = base.replace("postgres@", f"{name}@") + f"/{name}?sslmode=disable&search_path=s"
    engine = await opened_engine(url, tmp_path)
    try:
        result = await engine.trigger(TriggerRequest(task_id="hello"))
        assert result.run.status == EXECUTING
        sql = engine.store._write_view.sql  # type: ignore[attr-defined]  # noqa: SLF001
        assert (sql.start_read, sql.locked_read) == (False, False)
        places = engine.ctx.placer
        assert isinstance(places, Places)
        places.likely = False
        queued = await engine.trigger(TriggerRequest(task_id="other"))
        assert [r.id for r in await engine.dequeue(5)] == [queued.run.id]
        assert (await row_of(engine, result.run.id))["status"] == EXECUTING
    finally:
        await engine.store.close()


async def test_two_daemons_reading_ahead_into_a_queue_of_limit_1_never_run_two(
        pg_cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The queue exists (its row is read, nothing written before the dequeue): each trigger
    reads ahead. Four at once through two daemons, round after round: one run executes, the
    others stay QUEUED — the turn orders the reads ahead as it orders dequeues."""
    reads: list[int] = []
    real = start_reads.read

    def counted(text: str, sent: int) -> Any:
        reads.append(sent)
        return real(text, sent)
    monkeypatch.setattr(start_reads, "read", counted)
    url = pg_cluster.fresh_url()
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = await opened_engine(url, tmp_path / "a")
    second_store = PostgresStore(url, daemon_id="daemon_b")
    try:
        await second_store.open()
        second = Engine(second_store, FakeClock(T0), DaemonSettings(home=tmp_path / "b"))
        await second.load()  # the versions the first one registered
        second.ctx.placer = Places("b")
        engines = (first, second)
        warm = await first.trigger(TriggerRequest(task_id="one"))  # the queue, made
        await first.finish_attempt(warm.run.id, 1, AttemptOutcome(ok=True))
        for _ in range(5):
            results = await asyncio.gather(*(engines[n % 2].trigger(TriggerRequest(
                task_id="one")) for n in range(4)))
            executing = [r for r in await first.queries.runs.page(statuses=[EXECUTING])
                         if r.queue == "task/one"]
            assert len(executing) == 1, [(r.id, r.worker_id) for r in executing]
            assert sum(r.run.status == EXECUTING for r in results) <= 1
            for run in [executing[0]] + [r.run for r in results if r.run.id != executing[0].id]:
                if run.id != executing[0].id:
                    [taken] = await first.dequeue(5)
                    started = await first.start_attempt(taken, "worker_a", None)
                    assert started is not None
                    run = started[0]
                by = first if run.worker_id == "worker_a" else second
                ended = await by.finish_attempt(run.id, 1, AttemptOutcome(ok=True))
                assert ended.status == "COMPLETED"
        assert await first.store.read().runs.count_by_status() == {"COMPLETED": 21}
        assert len(reads) >= 20  # every trigger into the existing queue read ahead
    finally:
        await first.store.close()
        await second_store.close()
