"""The rules a trigger's lone new run obeys when it is started alone (engine/starting.py
`_insert_alone`: nothing QUEUED before it, no rate limit): review rv12e found the dispatcher's
rules tested only on the savepoint path — tests/test_engine_start_at_once.py's engine declares
a rate-limited task, so none of its triggers goes this way. Here no task has a rate limit, and
each test checks that the trigger took this path (no SAVEPOINT, no queue page read): a paused
queue, an offline dev project, a queue's and a concurrency key's limit keep the run QUEUED; a
commit that fails or a part that fails after the start gives the place back and leaves nothing
written; the run's row, counters, tags, ttl, deadline, idempotency key and parent are as a
dispatched run's. A timer due and not fired yet (a DELAYED run whose time came) keeps any
trigger from starting its run at once, also while the dispatcher's round fires it (review
rv12e: the run overtook the delayed one). Real SQLite store (its statements traced); the
executor's side is the recording fake of test_engine_start_at_once.py, an edge."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import pytest
from test_dispatch_idle_room import settled
from test_engine_start_alone import traced
from test_engine_start_at_once import Places, advance, stored, trigger

from tests.engine_support import T0, open_engine
from trigger_local.clock import FakeClock
from trigger_local.dispatch.dispatcher import wakes
from trigger_local.engine import AttemptOutcome, Engine, TriggerRequest, triggering
from trigger_local.engine.events import Event
from trigger_local.store.models import COMPLETED, EXECUTING, QUEUED, Run, TaskDef, Version

ONE = "task/one"


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[Engine]:
    eng = await open_engine(tmp_path, FakeClock(T0), concurrency=5, tasks=[
        TaskDef(task_id="hello", queue="task/hello", shared=True),
        TaskDef(task_id="one-at-a-time", queue=ONE, queue_concurrency_limit=1, shared=True)])
    yield eng
    await eng.store.close()


@pytest.fixture
def places(engine: Engine) -> Places:
    engine.ctx.placer = places = Places(engine)
    return places


@contextmanager
def alone(engine: Engine) -> Iterator[None]:
    """The triggers inside went the alone way: no savepoint (the other way's dequeue opens one
    whenever a place was taken), no page of a queue read."""
    with traced(engine) as statements:
        yield
    assert statements
    assert not [s for s in statements if "SAVEPOINT" in s or "ORDER BY queued_at" in s]


async def finish(engine: Engine, run_id: str) -> None:
    await engine.finish_attempt(run_id, 1, AttemptOutcome(ok=True, output='"ok"'))


async def test_a_queue_at_its_limit_keeps_the_lone_run_queued(engine: Engine,
                                                             places: Places) -> None:
    with alone(engine):
        running = await trigger(engine, "one-at-a-time")
    assert running.status == EXECUTING
    with alone(engine):
        waiting = await trigger(engine, "one-at-a-time")
    assert (await stored(engine, waiting.id)).status == QUEUED
    assert places.log[-1] == f"release {waiting.id}"
    assert engine.ctx.reserved == {}


async def test_a_concurrency_key_at_its_limit_keeps_the_lone_run_queued(
        engine: Engine, places: Places) -> None:
    # the queue's limit holds for each concurrency key apart (engine/dequeue.py)
    with alone(engine):
        first = await trigger(engine, "one-at-a-time", concurrency_key="k1")
    with alone(engine):
        same_key = await trigger(engine, "one-at-a-time", concurrency_key="k1")
    assert first.status == EXECUTING
    assert (await stored(engine, same_key.id)).status == QUEUED
    other_key = await trigger(engine, "one-at-a-time", concurrency_key="k2")  # not alone now
    assert other_key.status == EXECUTING


async def test_a_paused_queue_keeps_the_lone_run_queued(engine: Engine, places: Places) -> None:
    await finish(engine, (await trigger(engine)).id)  # makes the queue
    await engine.set_queue_paused("task/hello", True)
    with alone(engine):
        run = await trigger(engine)
    assert (await stored(engine, run.id)).status == QUEUED
    assert places.log[-1] == f"release {run.id}"


async def test_an_offline_dev_project_keeps_the_lone_run_queued(engine: Engine,
                                                               places: Places) -> None:
    await engine.register_version(Version(
        id="version_dev", project_dir="/dev", created_at=T0 + 1, project="devproj",
        tasks=[TaskDef(task_id="devtask", queue="task/devtask", shared=True)]), dev=True)
    with alone(engine):
        run = await trigger(engine, "devtask", project="devproj")
    assert (await stored(engine, run.id)).status == QUEUED  # no `dev` session is open
    assert places.log[-1] == f"release {run.id}"


async def test_the_lone_runs_row_and_counters_are_a_started_runs(engine: Engine,
                                                                places: Places) -> None:
    with alone(engine):
        result = await engine.trigger(TriggerRequest(
            task_id="hello", tags=["t1"], ttl="10m", max_duration=30, idempotency_key="k"))
    row = await stored(engine, result.run.id)
    assert (row.status, row.attempt_count, row.worker_id) == (EXECUTING, 1, "worker_1")
    assert row.version_id == "version_1" and row.started_at == T0
    assert row.expires_at is None  # its ttl ends with its start
    assert row.deadline_at == T0 + 30
    assert [r.id for r in await engine.queries.runs.page(tags=["t1"])] == [row.id]
    assert await engine.queries.runs.count_by_status() == {EXECUTING: 1}
    queues = {q.name: (q.running, q.queued) for q in await engine.queries.queues.all()}
    assert queues["task/hello"] == (1, 0)
    again = await engine.trigger(TriggerRequest(task_id="hello", idempotency_key="k"))
    assert again.cached and again.run.id == row.id
    await finish(engine, row.id)
    assert await engine.queries.runs.count_by_status() == {COMPLETED: 1}
    queues = {q.name: (q.running, q.queued) for q in await engine.queries.queues.all()}
    assert queues["task/hello"] == (0, 0)


async def test_a_lone_child_run_names_its_parent(engine: Engine, places: Places) -> None:
    parent = await trigger(engine)
    with alone(engine):
        child = await engine.trigger(TriggerRequest(task_id="hello", parent_run_id=parent.id,
                                                    resume_parent=True), wait=True)
    row = await stored(engine, child.run.id)
    assert row.status == EXECUTING and row.waitpoint_id == child.waitpoint_id
    assert (row.parent_run_id, row.root_run_id, row.depth) == (parent.id, parent.id, 1)


async def test_a_commit_that_fails_gives_the_place_back(engine: Engine, places: Places) -> None:
    real = engine.store.tx

    @asynccontextmanager
    async def failing(exclusive: bool = False, starts: bool = False) -> AsyncIterator[Any]:
        async with real(exclusive, starts) as view:
            yield view
            raise OSError("disk full")  # as a COMMIT that fails: everything is rolled back

    engine.store.tx = failing  # type: ignore[method-assign]
    with alone(engine), pytest.raises(OSError):
        await trigger(engine)
    engine.store.tx = real  # type: ignore[method-assign]
    # the pool sends nothing: the move to EXECUTING was never published
    assert [line.split()[0] for line in places.log] == ["place", "started", "release"]
    assert await engine.queries.runs.with_status([QUEUED, EXECUTING]) == []
    assert await engine.queries.runs.count_by_status() == {}
    assert engine.ctx.reserved == {}
    assert (await trigger(engine)).status == EXECUTING  # the next one starts


async def test_a_part_that_fails_after_the_start_gives_the_place_back(
        engine: Engine, places: Places, monkeypatch: pytest.MonkeyPatch) -> None:
    async def failing(*args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(triggering, "remember", failing)  # after the run is made and started
    with alone(engine), pytest.raises(OSError):
        await engine.trigger(TriggerRequest(task_id="hello"), request_key="req-1")
    assert [line.split()[0] for line in places.log] == ["place", "started", "release"]
    assert await engine.queries.runs.with_status([QUEUED, EXECUTING]) == []
    assert engine.ctx.reserved == {}


async def test_a_delayed_run_due_now_is_not_overtaken(engine: Engine, places: Places) -> None:
    # review rv12e: a DELAYED run whose time came, its timer not fired yet (the dispatcher's
    # round fires it, then dequeues), goes first in its queue (it keeps its queue time): a
    # trigger then must not start its own run at once, ahead of it
    delayed = await trigger(engine, "one-at-a-time", delay="10s")
    advance(engine, 10)
    assert engine.ctx.due.times() == [T0 + 10]  # its timer is due, not fired yet
    seen: list[Event] = []
    engine.hub.subscribe(Event, seen.append)
    new = await trigger(engine, "one-at-a-time")
    assert (await stored(engine, new.id)).status == QUEUED
    assert places.log == []  # no place taken
    assert [e for e in seen if wakes(e)]  # the round is woken: it fires the timer first
    assert await engine.tick_timers() == 1  # the dispatcher's round: its timers, its dequeue
    assert [r.id for r in await engine.dequeue(2)] == [delayed.id]


async def test_a_trigger_while_the_round_fires_a_due_timer_does_not_go_first(
        engine: Engine) -> None:
    # the round takes the due timers off the schedule, then fires them in a unit of work; a
    # trigger served in between (its unit ahead of the round's on the store's lock) must not
    # start its run ahead of the delayed one either
    dispatcher, executor = await settled(engine, room=4)
    delayed = await trigger(engine, delay="10s")
    await dispatcher.step()  # a round since, which found nothing to start: idle again
    assert dispatcher.idle()
    advance(engine, 10)
    during: list[Run] = []
    real = engine.tick_timers

    async def a_trigger_first() -> int:
        if not during:
            during.append(await trigger(engine))
        return await real()

    engine.tick_timers = a_trigger_first  # type: ignore[method-assign]
    await dispatcher.step()
    assert during[0].status == QUEUED
    assert executor.started == [delayed.id, during[0].id]  # the delayed run first
