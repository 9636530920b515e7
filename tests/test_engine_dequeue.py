"""Dequeue: which runs start, in what order, under queue limits, concurrency keys, paused
queues and the global concurrency."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.engine_support import T0, open_engine
from trigger_local.clock import FakeClock
from trigger_local.engine import AttemptOutcome, Engine, TriggerRequest
from trigger_local.errors import NotFoundError, ValidationError
from trigger_local.store import Store
from trigger_local.store.models import DEQUEUED, EXECUTING, QUEUED, Run, TaskDef


@pytest.fixture
async def engine(tmp_path: Path, clock: FakeClock, store: Store) -> AsyncIterator[Engine]:
    eng = await open_engine(tmp_path, clock, store=store, concurrency=5, tasks=[
        TaskDef(task_id="hello", queue="task/hello"),
        TaskDef(task_id="other", queue="task/other"),
        TaskDef(task_id="limited", queue="task/limited", queue_concurrency_limit=2),
    ])
    yield eng
    await eng.store.close()


async def trigger(engine: Engine, clock: FakeClock, task_id: str = "hello", n: int = 1,
                  **options: object) -> list[Run]:
    runs = []
    for _ in range(n):
        runs.append((await engine.trigger(TriggerRequest(task_id=task_id, **options))).run)  # type: ignore[arg-type]
        clock.advance(1)  # distinct queue times make the order observable
    return runs


async def test_dequeue_takes_oldest_first_and_marks_dequeued(engine: Engine,
                                                             clock: FakeClock) -> None:
    runs = await trigger(engine, clock, n=3)
    got = await engine.dequeue(2)
    assert [r.id for r in got] == [runs[0].id, runs[1].id]
    stored = await engine.queries.runs.get(runs[0].id)
    assert stored is not None and stored.status == DEQUEUED and stored.version_id == "version_1"
    assert [r.id for r in await engine.dequeue(10)] == [runs[2].id]
    assert await engine.dequeue(10) == []
    assert await engine.dequeue(0) == []


async def test_priority_jumps_ahead_across_queues(engine: Engine, clock: FakeClock) -> None:
    old = await trigger(engine, clock, n=2)
    urgent = await trigger(engine, clock, task_id="other", priority=60)
    got = await engine.dequeue(3)
    assert [r.id for r in got] == [urgent[0].id, old[0].id, old[1].id]


async def test_global_concurrency_caps_running_runs(engine: Engine, clock: FakeClock) -> None:
    await trigger(engine, clock, n=4)
    await trigger(engine, clock, task_id="other", n=4)
    assert len(await engine.dequeue(100)) == 5
    assert await engine.dequeue(100) == []
    # finishing one frees one slot
    [first] = await engine.queries.runs.page(statuses=[DEQUEUED], limit=1)
    started = await engine.start_attempt(first, "worker_1", None)
    assert started is not None
    await engine.finish_attempt(first.id, 1, AttemptOutcome(ok=True))
    assert len(await engine.dequeue(100)) == 1


async def test_queue_limit(engine: Engine, clock: FakeClock) -> None:
    limited = await trigger(engine, clock, task_id="limited", n=3)
    free = await trigger(engine, clock, n=1)
    got = await engine.dequeue(10)
    assert [r.id for r in got] == [limited[0].id, limited[1].id, free[0].id]
    assert await engine.dequeue(10) == []
    await engine.requeue(got[0], "no worker")  # a slot handed back is a slot free
    assert [r.id for r in await engine.dequeue(10)] == [limited[0].id]


async def test_concurrency_keys_split_the_queue(engine: Engine, clock: FakeClock) -> None:
    a = await trigger(engine, clock, task_id="limited", n=3, concurrency_key="a")
    b = await trigger(engine, clock, task_id="limited", n=3, concurrency_key="b")
    got = await engine.dequeue(10)
    assert sorted(r.id for r in got) == sorted([a[0].id, a[1].id, b[0].id, b[1].id])
    assert await engine.dequeue(10) == []


async def test_a_queue_limit_of_zero_starts_nothing(engine: Engine, clock: FakeClock) -> None:
    await engine.set_queue_limit("hello", 0)
    await trigger(engine, clock, n=2)
    assert await engine.dequeue(10) == []
    queue = await engine.set_queue_limit("hello", None)
    assert queue.concurrency_limit is None
    assert len(await engine.dequeue(10)) == 2


async def test_paused_queue_accepts_triggers_and_starts_nothing(engine: Engine,
                                                                clock: FakeClock) -> None:
    queue = await engine.set_queue_paused("task/hello", True)
    assert queue.paused
    paused_runs = await trigger(engine, clock, n=2)
    others = await trigger(engine, clock, task_id="other")
    assert [r.id for r in await engine.dequeue(10)] == [others[0].id]
    stored = await engine.queries.runs.get(paused_runs[0].id)
    assert stored is not None and stored.status == QUEUED
    assert (await engine.get_queue("hello")).queued == 2
    await engine.set_queue_paused("hello", False)
    assert [r.id for r in await engine.dequeue(10)] == [r.id for r in paused_runs]
    types = [e.type for e in await engine.queries.events.after(0)]
    assert "queue.paused" in types and "queue.resumed" in types


async def test_queue_management_errors(engine: Engine) -> None:
    with pytest.raises(NotFoundError):
        await engine.get_queue("nope")
    with pytest.raises(ValidationError):
        await engine.set_queue_limit("hello", -1)


async def test_queue_counts_running_and_queued(engine: Engine, clock: FakeClock) -> None:
    await trigger(engine, clock, n=3)
    [run] = await engine.dequeue(1)
    assert await engine.start_attempt(run, "worker_1", 99) is not None
    queue = await engine.get_queue("hello")
    assert (queue.running, queue.queued) == (1, 2)


async def test_start_attempt_only_from_dequeued(engine: Engine, clock: FakeClock) -> None:
    [run] = await trigger(engine, clock)
    assert await engine.start_attempt(run, "worker_1", None) is None  # still QUEUED
    [dequeued] = await engine.dequeue(1)
    started = await engine.start_attempt(dequeued, "worker_1", 1234, executor="process")
    assert started is not None
    current, attempt = started
    assert (current.status, current.attempt_count, current.worker_id) == (EXECUTING, 1, "worker_1")
    assert (attempt.number, attempt.pid, attempt.status, attempt.started_at) \
        == (1, 1234, EXECUTING, T0 + 1)
    assert await engine.start_attempt(dequeued, "worker_2", None) is None  # already started


async def test_dequeue_clears_the_ttl(engine: Engine, clock: FakeClock) -> None:
    [run] = await trigger(engine, clock, ttl="5s")
    [dequeued] = await engine.dequeue(1)
    assert dequeued.expires_at is None
    clock.advance(10)
    await engine.tick_timers()
    stored = await engine.queries.runs.get(run.id)
    assert stored is not None and stored.status == DEQUEUED


async def test_requeue_only_moves_dequeued_runs(engine: Engine, clock: FakeClock) -> None:
    [run] = await trigger(engine, clock)
    await engine.requeue(run, "nothing to do")  # QUEUED: no change, no error
    [dequeued] = await engine.dequeue(1)
    await engine.requeue(dequeued, "no worker free")
    stored = await engine.queries.runs.get(run.id)
    assert stored is not None and stored.status == QUEUED


async def test_a_busy_concurrency_key_does_not_starve_the_others(engine: Engine,
                                                                 clock: FakeClock) -> None:
    await engine.set_queue_limit("limited", 1)
    busy = await trigger(engine, clock, task_id="limited", n=30, concurrency_key="busy")
    quiet = await trigger(engine, clock, task_id="limited", concurrency_key="quiet")
    got = await engine.dequeue(10)
    assert sorted(r.id for r in got) == sorted([busy[0].id, quiet[0].id])
