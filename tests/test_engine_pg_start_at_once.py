"""A trigger on an idle daemon starts its run in its own transaction on PostgreSQL too
(engine/starting.py, issue #14): serializable, in the dequeues' turn (store/postgres/store.py),
so the dequeue it runs counts what every daemon runs. Real PostgreSQL, one or two engines (two
daemons) on one database; the executor's side (`Placer`) is a recording fake, an edge (the
pool's is tested with real processes in tests/e2e/test_start_at_once.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from pg_cluster import Cluster

from tests.engine_support import T0, two_daemons
from tests.test_store_postgres_concurrency import until
from trigger_local.clock import FakeClock
from trigger_local.engine import AttemptOutcome, Engine, TriggerRequest
from trigger_local.store.models import COMPLETED, EXECUTING, QUEUED, Attempt, Run, TaskDef
from trigger_local.store.postgres import PostgresStore

TASKS = [TaskDef(task_id="hello", queue="task/hello", shared=True),
         TaskDef(task_id="one", queue="task/one", queue_concurrency_limit=1, shared=True)]


class Slot:
    def __init__(self, places: Places, run_id: str) -> None:
        self.places, self.run_id = places, run_id
        self.worker_id, self.pid, self.executor = f"worker_{places.name}", 123, "probe"

    def started(self, run: Run, attempt: Attempt) -> None:
        self.places.log.append(f"started {run.id} {run.status}")

    def release(self) -> None:
        self.places.log.append(f"release {self.run_id}")


class Places:
    """A warm place for every run while `likely`."""

    def __init__(self, name: str) -> None:
        self.name, self.likely = name, True
        self.log: list[str] = []

    def may_place(self, version_id: str, task_id: str) -> bool:
        return self.likely

    def place(self, run: Run, version_id: str) -> Slot | None:
        self.log.append(f"place {run.id}")
        return Slot(self, run.id)

    def released(self) -> list[str]:
        return [line.split()[1] for line in self.log if line.startswith("release")]


@pytest.fixture
async def engines(pg_cluster: Cluster, tmp_path: Path) -> AsyncIterator[tuple[Engine, Engine]]:
    async with two_daemons(pg_cluster.fresh_url(), tmp_path, FakeClock(T0),
                           tasks=TASKS) as (first, second):
        first.ctx.placer, second.ctx.placer = Places("a"), Places("b")
        yield first, second


@pytest.fixture
def engine(engines: tuple[Engine, Engine]) -> Engine:
    return engines[0]


def places_of(engine: Engine) -> Places:
    assert isinstance(engine.ctx.placer, Places)
    return engine.ctx.placer


@pytest.fixture
def opened(engine: Engine) -> Iterator[list[tuple[bool, bool]]]:
    """The store transactions the engine opens: (exclusive, starts) each."""
    seen: list[tuple[bool, bool]] = []
    real = engine.store.tx

    def counting(exclusive: bool = False, starts: bool = False) -> Any:
        seen.append((exclusive, starts))
        return real(exclusive, starts)
    engine.store.tx = counting  # type: ignore[method-assign]
    yield seen
    engine.store.tx = real  # type: ignore[method-assign]


async def stored(engine: Engine, run_id: str) -> Run:
    run = await engine.queries.runs.get(run_id)
    assert run is not None
    return run


async def test_a_trigger_on_an_idle_daemon_is_executing_after_one_commit(
        engine: Engine, opened: list[tuple[bool, bool]]) -> None:
    run = (await engine.trigger(TriggerRequest(task_id="hello"))).run
    assert opened == [(False, True)]  # one transaction: serializable, in the dequeues' turn
    assert run.status == EXECUTING and run.worker_id == "worker_a"
    assert (await stored(engine, run.id)).status == EXECUTING
    [attempt] = await engine.queries.attempts.for_run(run.id)
    assert (attempt.status, attempt.worker_id) == (EXECUTING, "worker_a")
    assert places_of(engine).log == [f"place {run.id}", f"started {run.id} EXECUTING"]
    assert engine.ctx.reserved == {}
    events = await engine.queries.events.after(0, run_id=run.id)
    assert [(e.type, e.data.get("from")) for e in events] == \
        [("run.created", None), ("run.executing", QUEUED)]
    # held by this daemon, as a run it dequeued and gave a process (takeover reads it)
    store = engine.store
    assert isinstance(store, PostgresStore)
    conn = await asyncpg.connect(store.url)
    try:
        assert await conn.fetchval("SELECT daemon_id FROM runs WHERE id = $1", run.id) == \
            "daemon_a"
    finally:
        await conn.close()


async def test_a_trigger_no_place_is_likely_for_keeps_todays_path(
        engine: Engine, opened: list[tuple[bool, bool]]) -> None:
    places_of(engine).likely = False
    run = (await engine.trigger(TriggerRequest(task_id="hello"))).run
    assert opened == [(False, False)]  # no turn taken: other daemons' dequeues never wait
    assert run.status == QUEUED and places_of(engine).log == []
    [taken] = await engine.dequeue(5)  # the dispatcher's, as before
    assert taken.id == run.id


async def test_two_daemons_triggering_into_a_queue_with_limit_1_never_run_two_at_once(
        engines: tuple[Engine, Engine]) -> None:
    """Each round, four triggers at once through the two daemons into a new queue of limit 1
    (made by the triggers themselves): one run starts, the others wait QUEUED with their
    places given back; once it ends, the dispatcher's dequeue starts the next one alone."""
    for round_ in range(6):
        queue = f"race-{round_}"
        requests = [TriggerRequest(task_id="hello", queue=queue, queue_concurrency_limit=1)
                    for _ in range(4)]
        results = await asyncio.gather(*(engines[n % 2].trigger(req)
                                          for n, req in enumerate(requests)))
        ids = {r.run.id for r in results}
        executing = [r for r in await engines[0].queries.runs.page(statuses=[EXECUTING])
                     if r.queue == queue]
        assert len(executing) == 1, [(r.id, r.worker_id) for r in executing]
        [winner] = executing
        released = {run_id for e in engines for run_id in places_of(e).released()}
        assert ids - {winner.id} <= released
        by = engines[0] if winner.worker_id == "worker_a" else engines[1]
        ended = await by.finish_attempt(winner.id, 1, AttemptOutcome(ok=True))
        assert ended.status == COMPLETED
        [nxt] = await engines[1].dequeue(5)
        assert nxt.id in ids - {winner.id}
        assert await engines[0].dequeue(5) == []  # the queue's one slot is taken
        started = await engines[1].start_attempt(nxt, "worker_b", None)
        assert started is not None
        await engines[1].finish_attempt(nxt.id, 1, AttemptOutcome(ok=True))
        for _ in range(2):  # the last two, one at a time
            [later] = await engines[0].dequeue(5)
            got = await engines[0].start_attempt(later, "worker_a", None)
            assert got is not None
            await engines[0].finish_attempt(later.id, 1, AttemptOutcome(ok=True))
        for run_id in ids:
            assert [a.status for a in await engines[0].queries.attempts.for_run(run_id)] == \
                [COMPLETED]


async def test_a_trigger_behind_a_queued_run_does_not_overtake_it(
        engines: tuple[Engine, Engine]) -> None:
    first, second = engines
    first.ctx.placer = None
    older = (await first.trigger(TriggerRequest(task_id="hello"))).run
    assert older.status == QUEUED
    clock = first.clock
    assert isinstance(clock, FakeClock)
    clock.advance(1)  # queued later: at one instant the order is the ids', random within 1 ms
    # through the other daemon: its trigger's dequeue would take the older run, so it starts
    # nothing, gives its place back and leaves both to the dispatchers, oldest first
    newer = (await second.trigger(TriggerRequest(task_id="hello"))).run
    assert newer.status == QUEUED
    assert places_of(second).log == [f"place {newer.id}", f"release {newer.id}"]
    assert second.ctx.reserved == {}
    assert [r.id for r in await second.dequeue(1)] == [older.id]


async def test_a_failed_commit_gives_the_place_back(engine: Engine) -> None:
    real = engine.store.tx

    @asynccontextmanager
    async def failing(exclusive: bool = False, starts: bool = False) -> AsyncIterator[Any]:
        async with real(exclusive, starts) as view:
            yield view
            raise OSError("disk full")  # as a COMMIT that fails: everything is rolled back

    engine.store.tx = failing  # type: ignore[method-assign]
    with pytest.raises(OSError):
        await engine.trigger(TriggerRequest(task_id="hello"))
    engine.store.tx = real  # type: ignore[method-assign]
    places = places_of(engine)
    [placed] = [line.split()[1] for line in places.log if line.startswith("place")]
    assert places.released() == [placed]
    assert await engine.queries.runs.get(placed) is None
    assert engine.ctx.reserved == {}
    # the turn was let go with the transaction: the next trigger starts its run
    assert (await engine.trigger(TriggerRequest(task_id="hello"))).run.status == EXECUTING


async def test_a_trigger_waits_for_another_daemons_dequeue_taking_the_last_slot(
        engines: tuple[Engine, Engine]) -> None:
    """The global concurrency is 1. Daemon b's dequeue takes its one slot (a run of another
    queue) and has not committed yet when daemon a's trigger could start its run at once. The
    trigger waits for the dequeues' turn, then sees b's dequeue committed: its run stays
    QUEUED. (A trigger without the turn read the runs before b's commit, skipped b's locked
    run, and started its own: two runs at once under a concurrency of 1.)"""
    first, second = engines
    first.settings.concurrency = second.settings.concurrency = 1
    placer, first.ctx.placer = first.ctx.placer, None
    older = (await first.trigger(TriggerRequest(task_id="hello"))).run
    first.ctx.placer = placer
    b_store = second.store
    assert isinstance(b_store, PostgresStore) and older.project is not None
    taken, release = asyncio.Event(), asyncio.Event()

    async def b_dequeues() -> None:
        async with b_store.tx(exclusive=True) as ops:
            [run] = await ops.runs.queued(older.project or "", "task/hello", 5)
            assert await ops.runs.update(run.id, run.snapshot_id, status="DEQUEUED",
                                         snapshot_id="snapshot_b")
            taken.set()
            await release.wait()

    b = asyncio.create_task(b_dequeues())
    await asyncio.wait_for(taken.wait(), 30)
    a = asyncio.create_task(first.trigger(TriggerRequest(task_id="one")))
    spy = await asyncpg.connect(b_store.url)

    async def waits_or_ended() -> bool:
        return a.done() or bool(await spy.fetchval(
            "SELECT count(*) FROM pg_locks WHERE NOT granted"))
    try:
        await until(waits_or_ended, "a to wait for the dequeues' turn (or to end)")
    finally:
        await spy.close()
    release.set()
    await asyncio.wait_for(b, 30)
    newer = (await asyncio.wait_for(a, 30)).run
    running = await first.queries.runs.page(statuses=["DEQUEUED", EXECUTING])
    assert [r.id for r in running] == [older.id]
    assert newer.status == QUEUED
    assert places_of(first).released() == [newer.id]
