"""A group commit whose hand-over saw every run that may start now wakes no dispatcher round
(engine/handover.py, `RoomTaken`): at concurrency 4 every commit's finished runs woke a round
whose dequeue, a transaction of its own, found nothing — the hand-over had started the runs
that could take their slots (issue #13). A hand-over that could not take every runnable run
still wakes the round, which starts the rest.
Real SQLite engine and group commit; the executor and its processes' slots are edges."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from engine_support import ProbeExecutor, open_engine
from test_dispatch_room_only import count_dequeues, looping
from test_engine_handover import Slots, done

from trigger_local.clock import FakeClock
from trigger_local.dispatch.dispatcher import Dispatcher
from trigger_local.engine import Engine, TriggerRequest
from trigger_local.engine.handover import RoomTaken
from trigger_local.ratelimit import parse_rate_limit
from trigger_local.store.models import EXECUTING, QUEUED, Run, TaskDef


class Executor(ProbeExecutor):
    """Room for `room` runs at once (new processes included); one process, `places`, with
    `slots`."""

    def __init__(self, engine: Engine, room: int, slots: int) -> None:
        self.engine, self.room = engine, room
        self.places = Slots(slots)
        self.started: list[Run] = []

    def capacity(self) -> int:
        return self.room - len(self.places.executing)

    async def assign(self, run: Run) -> bool:
        started = await self.engine.start_attempt(run, "worker_1", 4242)
        assert started is not None
        self.places.executing.add(run.id)
        self.started.append(started[0])
        return True


async def open_at(tmp_path: Path, concurrency: int) -> Engine:
    return await open_engine(tmp_path, FakeClock(1_700_000_000.0), concurrency=concurrency,
                             tasks=[TaskDef(task_id="hello", queue="task/hello")])


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[Engine]:
    eng = await open_at(tmp_path, concurrency=2)
    yield eng
    await eng.store.close()


async def queue(engine: Engine, n: int) -> list[str]:
    clock = engine.clock
    assert isinstance(clock, FakeClock)
    ids = []
    for _ in range(n):
        clock.advance(0.01)  # one after another in the queue
        ids.append((await engine.trigger(TriggerRequest(task_id="hello"))).run.id)
    return ids


async def status(engine: Engine, run_id: str) -> str:
    run = await engine.queries.runs.get(run_id)
    assert run is not None
    return run.status


async def settle() -> None:
    for _ in range(20):  # the loop's turns: a woken round dequeues within them
        await asyncio.sleep(0)
    await asyncio.sleep(0.05)


async def test_runs_the_hand_over_replaced_wake_no_round(engine: Engine) -> None:
    # the global concurrency (2) holds the queue back, not the process's room (10)
    ids = await queue(engine, 6)
    executor = Executor(engine, room=10, slots=10)
    dispatcher = Dispatcher(engine, executor)  # type: ignore[arg-type]
    engine.ctx.due.resync(None)  # nothing due: no timer round
    notices: list[RoomTaken] = []
    engine.hub.subscribe(RoomTaken, notices.append)
    calls = count_dequeues(engine)
    async with looping(dispatcher):
        await settle()
        assert [r.id for r in executor.started] == ids[:2]
        before = len(calls)
        await asyncio.gather(*(engine.finish_attempt(r.id, 1, done())
                               for r in executor.started))
        await settle()
        # the commit started the next two in their slots; no round asked the store again
        assert [await status(engine, i) for i in ids[2:]] == [EXECUTING] * 2 + [QUEUED] * 2
        assert [n.opens for n in notices] == [True, False]
        assert len(calls) == before
    assert dispatcher.idle()  # room that woke no round: the executor has room


async def test_a_hand_over_that_left_runnable_runs_wakes_the_round(tmp_path: Path) -> None:
    engine = await open_at(tmp_path, concurrency=50)
    try:
        ids = await queue(engine, 6)
        # the process that frees slots has room for what it held; a new one could take more
        executor = Executor(engine, room=3, slots=3)
        dispatcher = Dispatcher(engine, executor)  # type: ignore[arg-type]
        engine.ctx.due.resync(None)
        notices: list[RoomTaken] = []
        engine.hub.subscribe(RoomTaken, notices.append)
        calls = count_dequeues(engine)
        async with looping(dispatcher):
            await settle()
            assert [r.id for r in executor.started] == ids[:3]
            before = len(calls)
            await asyncio.gather(*(engine.finish_attempt(r.id, 1, done())
                                   for r in executor.started[:2]))
            await settle()
            # the hand-over filled the two slots (as many as it had room for): more may wait,
            # so the room woke a round, which asked the store
            assert notices == []
            assert len(calls) > before
            assert [await status(engine, i) for i in ids[3:5]] == [EXECUTING] * 2
    finally:
        await engine.store.close()


async def test_a_rate_limited_run_leaves_the_freed_slot_to_another_queue(tmp_path: Path) -> None:
    engine = await open_engine(tmp_path, FakeClock(1_700_000_000.0), concurrency=50, tasks=[
        TaskDef(task_id="hello", queue="task/hello"),
        TaskDef(task_id="limited", queue="task/limited",
                rate_limit=parse_rate_limit({"limit": 1, "period": "1h"}))])
    try:
        clock = engine.clock
        assert isinstance(clock, FakeClock)
        spent = (await engine.trigger(TriggerRequest(task_id="limited"))).run.id
        assert [r.id for r in await engine.dequeue(1)] == [spent]  # the hour's one start
        first = await queue(engine, 1)
        executor = Executor(engine, room=1, slots=1)  # one process, one slot
        dispatcher = Dispatcher(engine, executor)  # type: ignore[arg-type]
        engine.ctx.due.resync(None)
        async with looping(dispatcher):
            await settle()
            assert [r.id for r in executor.started] == first
            clock.advance(0.01)
            limited = (await engine.trigger(TriggerRequest(task_id="limited"))).run.id
            other = await queue(engine, 1)  # after the limited run, in another queue
            await settle()
            await engine.finish_attempt(first[0], 1, done())
            await settle()
            # the freed slot goes to the other queue's run, not held for the limited queue's
            # window (an hour): the hand-over's dequeue counted the refused run as placed,
            # took nothing, and woke no round
            assert await status(engine, other[0]) == EXECUTING
            assert await status(engine, limited) == QUEUED
    finally:
        await engine.store.close()
