"""A dispatcher round that only room woke (a run ended, the executor has room) asks the store
nothing when its last dequeue saw no QUEUED run at all and none came since (issue #13: with one
HTTP trigger per run, each run's end woke a round whose dequeue — a write transaction — found
nothing). A new QUEUED run, a run put back on its queue without waking the loop, a timer that
fired, a queue given room: the next round dequeues as before.
Real SQLite engine; the executor and the placer are edges (tests/test_dispatch_idle_room.py's)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from engine_support import (
    T0,
    hello_engine,  # noqa: F401 (the engine fixture)
    open_engine,
)
from test_dispatch_idle_room import IdleGate, settled, trigger

from trigger_local.clock import FakeClock
from trigger_local.dispatch.dispatcher import Dispatcher
from trigger_local.engine import Engine
from trigger_local.engine.dequeue import dequeue
from trigger_local.store.models import CANCELED, EXECUTING, QUEUED, TaskDef


def count_dequeues(engine: Engine) -> list[int]:
    """Each call of `engine.dequeue` appends its limit (the spy wraps the real one)."""
    calls: list[int] = []
    real = engine.dequeue

    async def spy(limit: int, held: int = 0, **kw: Any) -> Any:
        calls.append(limit)
        return await real(limit, held, **kw)

    engine.dequeue = spy  # type: ignore[method-assign]
    return calls


@asynccontextmanager
async def looping(dispatcher: Dispatcher) -> AsyncIterator[list[int]]:
    """The dispatcher's loop running as the daemon runs it (step after step); each round it
    does appends what it did."""
    rounds: list[int] = []
    real = dispatcher.tick

    async def counted() -> int:
        rounds.append(await real())
        return rounds[-1]

    dispatcher.tick = counted  # type: ignore[method-assign]

    async def loop() -> None:
        while True:
            await dispatcher.step()

    task = asyncio.get_running_loop().create_task(loop())
    try:
        yield rounds
    finally:
        dispatcher.stop()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_room_after_the_last_run_wakes_no_round(engine: Engine) -> None:
    # a room-only round skipped its dequeue, but the wake, the step and the round cost the
    # loop three turns per run with one HTTP trigger per run (~3 % of the daemon's CPU)
    dispatcher, executor = await settled(engine, room=4)
    calls = count_dequeues(engine)
    async with looping(dispatcher) as rounds:
        for _ in range(3):
            run = await trigger(engine)
            assert run.status == EXECUTING  # started in its trigger's transaction
            await engine.cancel(run.id)  # it ends: room alone
            dispatcher.wake()  # and the executor says so (the pool does, executors/sharing.py)
            await asyncio.sleep(0.02)
        assert rounds == [] and calls == []
        assert dispatcher.idle()  # the next trigger still starts its own run
        assert (await trigger(engine)).status == EXECUTING
        executor.room = 0  # every process busy: room that came is looked at when asked
        run = await trigger(engine)
        await engine.cancel(run.id)
        assert not dispatcher.idle()
        executor.room = 4
        engine.ctx.placer = None  # a QUEUED run still wakes a round, which starts it
        waiting = await trigger(engine)
        for _ in range(100):
            if executor.started:
                break
            await asyncio.sleep(0.01)
        assert rounds[0] == 1 and calls[0] == 4 and executor.started == [waiting.id]


async def test_room_that_woke_no_round_wakes_it_for_a_run_put_back(engine: Engine) -> None:
    dispatcher, executor = await settled(engine, room=4)
    async with looping(dispatcher) as rounds:
        run = await trigger(engine)
        assert run.status == EXECUTING
        dispatcher.wake()  # room first (a process exited), no round
        await asyncio.sleep(0.02)
        assert rounds == []
        # then its run goes back on its queue, which wakes nothing itself
        back = await engine.worker_lost(run.id, 1, "The process is gone", interrupted=True)
        assert back is not None and back.status == QUEUED
        for _ in range(100):
            if executor.started:
                break
            await asyncio.sleep(0.01)
        assert executor.started == [run.id]


async def test_a_new_queued_run_is_dequeued(engine: Engine) -> None:
    dispatcher, executor = await settled(engine, room=4)
    calls = count_dequeues(engine)
    engine.ctx.placer = None  # no place: the run is QUEUED, its creation wakes the loop
    waiting = await trigger(engine)
    assert waiting.status == QUEUED
    await dispatcher.step()
    assert calls == [4] and executor.started == [waiting.id]


async def test_a_run_put_back_without_waking_is_dequeued_at_the_next_room(
        engine: Engine) -> None:
    dispatcher, executor = await settled(engine, room=4)
    run = await trigger(engine)
    assert run.status == EXECUTING
    # its process is gone while it ran: the run goes back on its queue, which does not wake
    # the loop; the process's exit does (the executor has room)
    back = await engine.worker_lost(run.id, 1, "The process is gone", interrupted=True)
    assert back is not None and back.status == QUEUED
    calls = count_dequeues(engine)
    dispatcher.wake()
    await dispatcher.step()
    assert calls == [4] and executor.started == [run.id]


async def test_room_with_a_run_a_limit_holds_back_is_dequeued(engine: Engine) -> None:
    dispatcher, executor = await settled(engine, room=1)
    engine.ctx.placer = None
    first, second = await trigger(engine), await trigger(engine)
    await dispatcher.step()  # room for one: the second waits
    assert executor.started == [first.id]
    engine.ctx.placer = IdleGate(dispatcher)
    calls = count_dequeues(engine)
    await engine.cancel(first.id)  # room alone, but a run is queued
    assert (await engine.queries.runs.get(first.id)).status == CANCELED
    await dispatcher.step()
    assert calls == [1] and executor.started == [first.id, second.id]


async def test_the_safety_net_round_asks_the_store(engine: Engine,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from trigger_local.dispatch import dispatcher as module

    dispatcher, _ = await settled(engine, room=4)
    calls = count_dequeues(engine)
    monkeypatch.setattr(module, "MAX_SLEEP_S", 0.01)  # nothing wakes it: the net's timeout
    await dispatcher.step()
    assert calls == [4]


async def test_a_skipped_round_without_room_is_not_idle(engine: Engine) -> None:
    dispatcher, executor = await settled(engine, room=4)
    calls = count_dequeues(engine)
    executor.room = 0  # every process busy
    dispatcher.wake()  # wakes no round: `idle` looks at the room
    assert calls == [] and not dispatcher.idle()  # as a round that could not look
    executor.room = 4
    dispatcher.wake()
    assert dispatcher.idle()


async def test_a_dequeue_undone_with_its_unit_does_not_hide_a_queued_run(
        tmp_path: Path) -> None:
    # review rv9b: another unit's dequeue (a group commit's hand-over) that saw no QUEUED run
    # lowered the shared flag; its unit undone (a failed commit), the run it had moved was QUEUED
    # again, and the rounds its slot woke were skipped
    eng = await open_engine(tmp_path, FakeClock(T0), tasks=[
        TaskDef(task_id="hello", queue="task/hello", shared=True, queue_concurrency_limit=1)])
    try:
        dispatcher, executor = await settled(eng, room=4)
        first = await trigger(eng)
        assert first.status == EXECUTING
        second = await trigger(eng)
        assert second.status == QUEUED  # the limit holds it
        real = eng.dequeue

        async def then_an_undone_unit(limit: int, held: int = 0, **kw: Any) -> Any:
            runs = await real(limit, held, **kw)
            with pytest.raises(Boom):
                async with eng._unit() as tx:
                    row = await tx.runs.get(second.id)
                    assert row is not None
                    await tx.runs.update(second.id, row.snapshot_id, status=CANCELED,
                                         completed_at=T0)
                    assert await dequeue(tx, 1) == []  # sees no QUEUED run
                    raise Boom
            return runs

        eng.dequeue = then_an_undone_unit  # type: ignore[method-assign]
        dispatcher.wake()
        await dispatcher.step()
        eng.dequeue = real  # type: ignore[method-assign]
        assert (await eng.queries.runs.get(second.id)).status == QUEUED
        await eng.cancel(first.id)  # its slot is free: room wakes the dispatcher
        await dispatcher.step()
        assert executor.started[-1] == second.id
    finally:
        await eng.store.close()


class Boom(Exception):
    pass
