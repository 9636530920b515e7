"""Timers: `tick_timers()` does what is due (delays, ttl, max_duration, waitpoint times) and
nothing before its time."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.engine_support import (
    T0,
    get,
    seen_events,  # noqa: F401 (the hub_events fixture)
    start,
    trigger,
)
from trigger_local.clock import FakeClock
from trigger_local.config import DaemonSettings
from trigger_local.dispatch.dispatcher import wakes
from trigger_local.engine import AttemptOutcome, Engine, TriggerRequest
from trigger_local.engine.events import AttemptAborted, Event, RunStatusChanged
from trigger_local.store import Store
from trigger_local.store.models import (
    DELAYED,
    EXECUTING,
    EXPIRED,
    PENDING_VERSION,
    QUEUED,
    TIMED_OUT,
    TaskDef,
    Version,
)

RETRY = {"max_attempts": 3, "randomize": False}


@pytest.fixture
async def engine(store: Store, clock: FakeClock, tmp_path: Path) -> Engine:
    eng = Engine(store, clock, DaemonSettings(home=tmp_path))
    await eng.register_version(Version(id="version_1", project_dir="/proj", created_at=T0, tasks=[
        TaskDef(task_id="hello", queue="task/hello", retry=RETRY)]))
    return eng


async def test_nothing_due_does_nothing(engine: Engine) -> None:
    await trigger(engine)
    assert await engine.tick_timers() == 0
    assert await engine.queries.timers.next_due_at() is None


async def test_delay_queues_the_run_when_due(engine: Engine, clock: FakeClock) -> None:
    run = await trigger(engine, delay="30s")
    assert await engine.queries.timers.next_due_at() == T0 + 30
    clock.advance(29)
    assert await engine.tick_timers() == 0 and (await get(engine, run.id)).status == DELAYED
    clock.advance(1)
    assert await engine.tick_timers() == 1
    queued = await get(engine, run.id)
    assert (queued.status, queued.delay_until) == (QUEUED, None)
    assert [r.id for r in await engine.dequeue(1)] == [run.id]


async def test_a_delayed_run_of_an_unindexed_task_waits_for_a_version(
        store: Store, clock: FakeClock, tmp_path: Path) -> None:
    engine = Engine(store, clock, DaemonSettings(home=tmp_path))
    run = (await engine.trigger(TriggerRequest(task_id="later", delay="5s"))).run
    clock.advance(5)
    await engine.tick_timers()
    assert (await get(engine, run.id)).status == PENDING_VERSION


async def test_ttl_expires_a_run_that_did_not_start(engine: Engine, clock: FakeClock,
                                                     hub_events: list[Event]) -> None:
    run = await trigger(engine, ttl="10s")
    clock.advance(10)
    assert await engine.tick_timers() == 1
    expired = await get(engine, run.id)
    assert (expired.status, expired.completed_at) == (EXPIRED, T0 + 10)
    assert expired.error is not None and expired.error["name"] == "Expired"
    assert await engine.dequeue(10) == []
    # the dispatcher hears of it (a run that ends may free room)
    [expiry] = [e for e in hub_events if isinstance(e, RunStatusChanged) and e.status == EXPIRED]
    assert expiry.run_id == run.id and wakes(expiry)


async def test_ttl_counts_from_the_end_of_the_delay(engine: Engine, clock: FakeClock) -> None:
    """As in Trigger.dev: a delayed run's ttl starts when its delay elapses."""
    run = await trigger(engine, delay="1h", ttl="10m")
    assert run.expires_at == T0 + 3600 + 600
    clock.advance(3600)
    await engine.tick_timers()
    assert (await get(engine, run.id)).status == QUEUED
    clock.advance(600)
    await engine.tick_timers()
    assert (await get(engine, run.id)).status == EXPIRED


async def test_max_duration_times_out_and_kills_the_worker(
        engine: Engine, clock: FakeClock, hub_events: list[Event]) -> None:
    run = await trigger(engine, max_duration=10)
    started = await start(engine, run.id)
    assert started.deadline_at == T0 + 10
    assert await engine.queries.timers.next_due_at() == T0 + 10
    clock.advance(10)
    assert await engine.tick_timers() == 1
    timed_out = await get(engine, run.id)
    assert timed_out.status == TIMED_OUT  # never retried, whatever the policy
    assert timed_out.error is not None and timed_out.error["name"] == "MaxDurationExceeded"
    [attempt] = await engine.queries.attempts.for_run(run.id)
    assert attempt.status == TIMED_OUT
    assert AttemptAborted(run_id=run.id, worker_id="worker_1", reason="max_duration") in hub_events


async def test_max_duration_does_not_count_time_spent_waiting(engine: Engine,
                                                              clock: FakeClock) -> None:
    run = await trigger(engine, max_duration=10)
    await start(engine, run.id)
    clock.advance(4)
    decision = await engine.wait(run.id, 1, kind="duration", until="1h")
    assert (await get(engine, run.id)).deadline_at is None
    clock.advance(3600)
    await engine.tick_timers()
    [dequeued] = await engine.dequeue(1)
    resumed = await engine.resume_held(dequeued)
    assert resumed is not None and resumed.deadline_at == clock.now() + 6
    assert await engine.wait_result(run.id, decision.waitpoint_id) is not None
    clock.advance(5.9)
    await engine.tick_timers()
    assert (await get(engine, run.id)).status == EXECUTING
    clock.advance(0.1)
    await engine.tick_timers()
    assert (await get(engine, run.id)).status == TIMED_OUT


async def test_a_retry_gets_a_fresh_max_duration(engine: Engine, clock: FakeClock) -> None:
    run = await trigger(engine, max_duration=10)
    await start(engine, run.id)
    clock.advance(8)
    retried = await engine.finish_attempt(run.id, 1,
                                          AttemptOutcome(ok=False, error={"message": "x"}))
    assert retried.status == DELAYED and retried.executed_s == 0
    clock.advance(retried.delay_until - clock.now())  # type: ignore[operator]
    await engine.tick_timers()
    again = await start(engine, run.id)
    assert again.deadline_at == clock.now() + 10


async def test_one_tick_does_everything_due(engine: Engine, clock: FakeClock) -> None:
    delayed = await trigger(engine, delay="5s")
    expiring = await trigger(engine, ttl="5s")
    token, _ = await engine.create_token(timeout="5s")
    clock.advance(5)
    assert await engine.tick_timers() == 3
    assert (await get(engine, delayed.id)).status == QUEUED
    assert (await get(engine, expiring.id)).status == EXPIRED
    wp = await engine.queries.waitpoints.get(token.id)
    assert wp is not None and wp.status == "TIMED_OUT"
    assert await engine.queries.timers.next_due_at() is None
