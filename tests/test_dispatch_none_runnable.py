"""A trigger whose own dequeue (engine/starting.py, in its transaction) found no run that may
start now — its queue paused, or at its concurrency limit — wakes no dispatcher round: the
round would find none either (issue #13: each such trigger cost a round whose dequeue is a
write transaction). What makes its run runnable still wakes one: the queue resumed, room in
the queue. A rate limit takes part: the round is woken (the gate notes when its window opens).
Real SQLite engine; the executor and the placer are edges (tests/test_dispatch_idle_room.py's)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from engine_support import T0, open_engine
from test_dispatch_idle_room import IdleGate, settled, trigger
from test_dispatch_room_only import looping

from trigger_local.clock import FakeClock
from trigger_local.engine import Engine, TriggerRequest
from trigger_local.store.models import EXECUTING, QUEUED, Run, TaskDef

QUEUE = "task/hello"


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[Engine]:
    eng = await open_engine(tmp_path, FakeClock(T0), tasks=[
        TaskDef(task_id="hello", queue=QUEUE, shared=True)])
    yield eng
    await eng.store.close()


async def until(check: object, tries: int = 200) -> None:
    for _ in range(tries):
        if check():  # type: ignore[operator]
            return
        await asyncio.sleep(0.01)
    raise AssertionError("not reached")


async def test_triggers_on_a_paused_queue_wake_no_round(engine: Engine) -> None:
    dispatcher, executor = await settled(engine, room=4)
    await engine.set_queue_paused(QUEUE, True)
    async with looping(dispatcher) as rounds:
        await asyncio.sleep(0.02)
        rounds.clear()  # the pause's own round (a queue change wakes one)
        runs = [await trigger(engine) for _ in range(3)]
        assert {r.status for r in runs} == {QUEUED}
        await asyncio.sleep(0.05)
        assert rounds == []
        await engine.set_queue_paused(QUEUE, False)  # resumed: a round starts them
        await until(lambda: len(executor.started) == 3)
        assert executor.started == [r.id for r in runs]


async def test_a_trigger_on_a_full_queue_wakes_no_round_and_room_starts_it(
        engine: Engine) -> None:
    dispatcher, executor = await settled(engine, room=4)
    await engine.set_queue_limit(QUEUE, 1)  # a queue change: its round runs first
    async with looping(dispatcher) as rounds:
        await asyncio.sleep(0.02)
        first = await trigger(engine)
        assert first.status == EXECUTING
        await asyncio.sleep(0.02)
        rounds.clear()
        second = await trigger(engine)
        assert second.status == QUEUED  # the limit holds it back
        await asyncio.sleep(0.05)
        assert rounds == []
        await engine.cancel(first.id)  # room in the queue: a round takes the second
        dispatcher.wake()  # as the executor says it (executors/sharing.py)
        await until(lambda: executor.started == [second.id])


async def test_a_rate_limited_trigger_still_wakes_the_round(engine: Engine) -> None:
    dispatcher, _ = await settled(engine, room=4)
    async with engine._unit() as tx:
        await tx.rate_limits.set("proj_local", QUEUE, {"limit": 1, "period_s": 60.0})
    async with looping(dispatcher) as rounds:
        assert (await trigger(engine)).status == EXECUTING
        await asyncio.sleep(0.02)
        rounds.clear()
        assert (await trigger(engine)).status == QUEUED  # its window is used up
        await until(lambda: rounds != [])


async def test_a_trigger_held_back_by_a_run_the_round_then_lets_go_wakes_the_round(
        tmp_path: Path) -> None:
    # review rv10b: a trigger served while a round starts its run counted that run (reserved)
    # as running; at the global concurrency its dequeue found none and its RunCreated woke no
    # round. The round's start then failed ("no process available": the reservation is let go
    # silently) and the new run, first in line (its priority), waited for the 5 s safety net
    eng = await open_engine(tmp_path, FakeClock(T0), concurrency=1, tasks=[
        TaskDef(task_id="hello", queue=QUEUE, shared=True)])
    try:
        dispatcher, executor = await settled(eng, room=4)
        eng.ctx.placer = None
        older = await trigger(eng)  # QUEUED: the round takes it
        eng.ctx.placer = IdleGate(dispatcher)
        during: list[str] = []
        real = executor.assign

        async def no_process_for_it(run: Run) -> bool:
            if run.id == older.id and not during:
                urgent = await eng.trigger(TriggerRequest(task_id="hello", priority=60))
                assert urgent.run.status == QUEUED  # the reserved run fills the concurrency
                during.append(urgent.run.id)
                return False  # no process could take it: the round lets it go
            return await real(run)

        executor.assign = no_process_for_it  # type: ignore[method-assign]
        async with looping(dispatcher):
            await until(lambda: bool(executor.started), tries=100)  # 1 s, not the 5 s net
        assert executor.started[0] == during[0]  # first in line: its priority
    finally:
        await eng.store.close()
