"""The dispatcher's timers come from the engine's in-memory schedule of due times
(engine/due.py): a round with nothing due asks the store nothing about timers, every kind of
timer a unit of work writes is in the schedule, and timers written before a restart are found
through the store once."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.engine_support import T0, ProbeExecutor, trigger
from tests.store_support import sqlite_store  # noqa: F401 (the store fixture)
from trigger_local.clock import FakeClock
from trigger_local.config import DaemonSettings
from trigger_local.dispatch.dispatcher import Dispatcher
from trigger_local.engine import AttemptOutcome, Engine
from trigger_local.engine.due import DueTimes
from trigger_local.engine.schedules import ScheduleSpec
from trigger_local.engine.unit import Tx
from trigger_local.errors import ConflictError
from trigger_local.store import SqliteStore
from trigger_local.store.models import DELAYED, EXPIRED, QUEUED, TIMED_OUT, Run, TaskDef, Version

TASKS = [TaskDef(task_id="hello", queue="task/hello", max_duration_s=30.0),
         TaskDef(task_id="cron-task", queue="task/cron-task",
                 schedule={"crons": [], "timezone": "UTC"})]


class NoRoomExecutor(ProbeExecutor):
    """Starts nothing: the runs the dispatcher dequeues go back to their queue."""


async def new_engine(store: SqliteStore, clock: FakeClock, tmp_path: Path) -> Engine:
    eng = Engine(store, clock, DaemonSettings(home=tmp_path))
    await eng.register_version(Version(id="version_1", project_dir="/proj", created_at=T0,
                                       tasks=TASKS))
    return eng


@pytest.fixture
async def engine(store: SqliteStore, clock: FakeClock, tmp_path: Path) -> Engine:
    return await new_engine(store, clock, tmp_path)


def count_store_due_queries(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> list[float]:
    calls: list[float] = []
    timers = engine.queries.timers
    real = timers.next_due_at

    async def counted() -> float | None:
        calls.append(engine.clock.now())
        return await real()

    monkeypatch.setattr(timers, "next_due_at", counted)
    return calls


async def status(engine: Engine, run_id: str) -> str:
    run = await engine.queries.runs.get(run_id)
    assert run is not None
    return run.status


async def test_rounds_with_nothing_due_ask_the_store_nothing_about_timers(
        engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = count_store_due_queries(engine, monkeypatch)
    dispatcher = Dispatcher(engine, NoRoomExecutor())  # type: ignore[arg-type]
    await trigger(engine)
    for _ in range(20):
        await dispatcher.tick()
    assert len(calls) == 1  # the first round: what the store had before this engine
    assert engine.ctx.due.next() is None


async def test_a_delay_fires_on_time_from_the_schedule_alone(
        engine: Engine, clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    dispatcher = Dispatcher(engine, NoRoomExecutor())  # type: ignore[arg-type]
    await dispatcher.tick()
    calls = count_store_due_queries(engine, monkeypatch)
    run = await trigger(engine, delay="10s")
    assert engine.ctx.due.next() == T0 + 10
    clock.set(T0 + 9.9)
    await dispatcher.tick()
    assert await status(engine, run.id) == DELAYED
    clock.set(T0 + 10)
    assert await dispatcher.tick() >= 1
    assert await status(engine, run.id) == QUEUED
    assert calls == []


async def test_timers_written_before_a_restart_fire_through_the_store(
        engine: Engine, store: SqliteStore, clock: FakeClock, tmp_path: Path) -> None:
    delayed = [await trigger(engine, delay=f"{10 * (i + 1)}s") for i in range(3)]
    again = Engine(store, clock, DaemonSettings(home=tmp_path))  # a new daemon: empty schedule
    await again.load()
    dispatcher = Dispatcher(again, NoRoomExecutor())  # type: ignore[arg-type]
    await dispatcher.tick()
    assert again.ctx.due.next() == T0 + 10
    for i in range(len(delayed)):
        clock.set(T0 + 10 * (i + 1))
        assert await dispatcher.tick() >= 1
        assert [await status(again, r.id) for r in delayed[: i + 1]] == [QUEUED] * (i + 1)
    assert await status(again, delayed[-1].id) == QUEUED


async def test_a_ttl_and_a_max_duration_are_in_the_schedule(engine: Engine,
                                                            clock: FakeClock) -> None:
    dispatcher = Dispatcher(engine, NoRoomExecutor())  # type: ignore[arg-type]
    await dispatcher.tick()
    running = await trigger(engine)
    await engine.dequeue(1)
    started = await engine.start_attempt(await _get(engine, running.id), "worker_1", 1)
    assert started is not None
    assert engine.ctx.due.next() == T0 + 30
    expiring = await trigger(engine, ttl="5s")
    assert engine.ctx.due.next() == T0 + 5
    clock.set(T0 + 5)
    await dispatcher.tick()
    assert await status(engine, expiring.id) == EXPIRED
    assert engine.ctx.due.next() == T0 + 30
    clock.set(T0 + 30)
    await dispatcher.tick()
    assert await status(engine, running.id) == TIMED_OUT


async def test_token_timeouts_and_schedule_ticks_are_in_the_schedule(
        engine: Engine, store: SqliteStore) -> None:
    await Dispatcher(engine, NoRoomExecutor()).tick()  # type: ignore[arg-type]
    token, _ = await engine.create_token(timeout="7s")
    assert engine.ctx.due.next() == T0 + 7 == await store.read().timers.next_due_at()
    schedule = await engine.create_schedule(ScheduleSpec("cron-task", "* * * * *",
                                                         deduplication_key="k"))
    assert schedule.next_run_at is not None
    assert engine.ctx.due.times() == [T0 + 7, schedule.next_run_at]


async def test_a_new_earliest_due_time_wakes_the_dispatcher(engine: Engine) -> None:
    dispatcher = Dispatcher(engine, NoRoomExecutor())  # type: ignore[arg-type]
    await dispatcher.tick()
    dispatcher._wakeup.clear()
    await engine.create_token(timeout="60s")  # no event wakes it: the new due time does
    assert dispatcher._wakeup.is_set()
    dispatcher._wakeup.clear()
    await engine.create_token(timeout="90s")  # later than the head: it sleeps on
    assert not dispatcher._wakeup.is_set()


def test_taking_due_times() -> None:
    due = DueTimes()
    assert due.take(0.0) == (True, True)  # the store is asked first
    due.resync(None)
    due.apply([("a", 5.0), ("b", 3.0), ("c", 9.0)])
    assert due.next() == 3.0 and due.take(2.0) == (False, False)
    assert due.take(5.0) == (True, False) and due.next() == 9.0
    due.resync(7.0)
    assert due.next() == 7.0 and due.take(7.0) == (True, True) and due.next() == 9.0
    due.apply([("c", None), ("d", 12.0), ("d", 11.0)])  # c cleared, d moved earlier
    assert due.times() == [11.0] and due.next() == 11.0
    assert due.take(11.5) == (True, False) and due.next() is None and due.take(99.0)[0] is False


def test_finished_work_leaves_no_due_time() -> None:
    due = DueTimes()
    due.apply([(("run_a", "expires_at"), 60.0), (("run_a", "deadline_at"), 90.0)])
    due.apply([(("run_a", "expires_at"), None)])  # it started: its ttl no longer counts
    due.apply([(("run_a", "deadline_at"), None)])  # it finished
    assert due.times() == []


async def _get(engine: Engine, run_id: str) -> Run:
    run = await engine.queries.runs.get(run_id)
    assert run is not None
    return run


async def test_a_started_run_leaves_no_ttl_and_a_finished_one_no_deadline(engine: Engine) -> None:
    await Dispatcher(engine, NoRoomExecutor()).tick()  # type: ignore[arg-type]
    run = await trigger(engine, ttl="5s")
    assert engine.ctx.due.times() == [T0 + 5]
    await engine.dequeue(1)
    assert engine.ctx.due.times() == []  # a DEQUEUED run has no ttl: no timer round for it
    assert await engine.start_attempt(await _get(engine, run.id), "worker_1", 1) is not None
    assert engine.ctx.due.times() == [T0 + 30]
    await engine.finish_attempt(run.id, 1, AttemptOutcome(ok=True, output="null",
                                                          output_type="application/json"))
    assert engine.ctx.due.times() == []


async def test_a_unit_that_rolls_back_sets_no_due_time(engine: Engine) -> None:
    run = await trigger(engine)

    async def change_its_mind(tx: Tx, run_id: str) -> None:
        await tx.runs.update(run_id, None, expires_at=T0 + 1)
        raise ConflictError("rolled back")

    with pytest.raises(ConflictError):
        await engine._run(change_its_mind, run.id)
    assert T0 + 1 not in engine.ctx.due.times()


async def test_a_timer_round_that_fails_is_tried_again(engine: Engine, clock: FakeClock,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    dispatcher = Dispatcher(engine, NoRoomExecutor())  # type: ignore[arg-type]
    await dispatcher.tick()
    run = await trigger(engine, delay="10s")
    clock.set(T0 + 10)
    real = engine.tick_timers

    async def disk_full() -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(engine, "tick_timers", disk_full)
    with pytest.raises(OSError):
        await dispatcher.tick()
    monkeypatch.setattr(engine, "tick_timers", real)
    await dispatcher.tick()  # the supervisor's next round: the delay is still due
    assert await status(engine, run.id) == QUEUED


def test_another_daemons_timers_move_the_resync_entry_earlier_only() -> None:
    """A timer heard of from another daemon (docs/scaling.md) makes the store be asked by then
    at the latest: one entry, whatever the number of such timers."""
    due = DueTimes()
    due.resync(None)
    due.resync_by(T0 + 10)
    due.resync_by(T0 + 20)  # later: the entry stays
    assert due.next() == T0 + 10 and len(due) == 0
    due.resync_by(T0 + 5)
    assert due.next() == T0 + 5
    assert due.take(T0 + 5) == (True, True)
