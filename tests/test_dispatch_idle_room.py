"""When a trigger may start its own run (engine/starting.py asks `Dispatcher.idle`): the
dispatcher's last dequeue took fewer runs than it had room for, and nothing since but room —
a run that ended or went waiting, the executor saying a process has room — came. With one HTTP
trigger per run, the previous run's end wakes the dispatcher before nearly every trigger
(issue #13): that end must not send the next trigger the dispatcher's way (its own dequeue and
start). A new QUEUED run, or a dequeue that filled its room (a backlog), still does.
Real SQLite engine; the executor and the placer are edges (a recording fake)."""

from __future__ import annotations

import pytest
from engine_support import (
    ProbeExecutor,
    hello_engine,  # noqa: F401 (the engine fixture)
)

from trigger_local.clock import FakeClock
from trigger_local.dispatch.dispatcher import Dispatcher
from trigger_local.engine import Engine, TriggerRequest
from trigger_local.store.models import CANCELED, EXECUTING, QUEUED, Attempt, Run


class Executor(ProbeExecutor):
    """Room for `room` runs; starts what the dispatcher gives it on worker_1."""

    def __init__(self, engine: Engine, room: int) -> None:
        self.engine, self.room = engine, room
        self.started: list[str] = []

    async def assign(self, run: Run) -> bool:
        if await self.engine.start_attempt(run, "worker_1", 1) is not None:
            self.started.append(run.id)
        return True


class Slot:
    worker_id, pid, executor = "worker_1", 123, "probe"

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id

    def started(self, run: Run, attempt: Attempt) -> None:
        pass

    def release(self) -> None:
        pass


class IdleGate:
    """A placer like the pool's (executors/at_once.py): a place only while the dispatcher is
    idle."""

    def __init__(self, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher

    def place(self, run: Run, version_id: str) -> Slot | None:
        return Slot(run.id) if self.dispatcher.idle() else None


async def settled(engine: Engine, room: int) -> tuple[Dispatcher, Executor]:
    """A dispatcher whose last round found nothing to do (the daemon between runs)."""
    executor = Executor(engine, room)
    dispatcher = Dispatcher(engine, executor)  # type: ignore[arg-type]
    engine.ctx.placer = IdleGate(dispatcher)
    engine.ctx.due.resync(None)  # nothing due: the round asks no timer
    assert not dispatcher.idle()  # no round yet
    await dispatcher.step()
    assert dispatcher.idle()
    return dispatcher, executor


async def trigger(engine: Engine) -> Run:
    clock = engine.clock
    assert isinstance(clock, FakeClock)
    clock.advance(0.01)  # queued one after another (equal times would tie by random id)
    return (await engine.trigger(TriggerRequest(task_id="hello"))).run


async def test_a_run_that_ended_leaves_the_next_trigger_its_start(engine: Engine) -> None:
    dispatcher, _ = await settled(engine, room=4)
    first = await trigger(engine)
    assert first.status == EXECUTING  # started in its trigger's transaction
    await engine.cancel(first.id)  # it ends: its slot is free, the dispatcher woken
    assert (await engine.queries.runs.get(first.id)).status == CANCELED
    assert dispatcher.idle()  # room alone: nothing waits for a round
    second = await trigger(engine)
    assert second.status == EXECUTING


async def test_the_executors_room_leaves_it_idle(engine: Engine) -> None:
    dispatcher, _ = await settled(engine, room=4)
    dispatcher.wake()  # a process became idle, booted, exited: room
    assert dispatcher.idle()
    assert (await trigger(engine)).status == EXECUTING


async def test_a_queued_run_waits_for_the_round_and_the_next_trigger_behind_it(
        engine: Engine) -> None:
    dispatcher, executor = await settled(engine, room=4)
    engine.ctx.placer = None  # this trigger finds no place: its run is QUEUED
    waiting = await trigger(engine)
    assert waiting.status == QUEUED
    assert not dispatcher.idle()  # its creation is news: the round takes it first
    engine.ctx.placer = IdleGate(dispatcher)
    assert (await trigger(engine)).status == QUEUED  # not ahead of the older run
    await dispatcher.step()
    assert executor.started[0] == waiting.id
    assert dispatcher.idle()  # the round had room to spare


async def test_a_round_that_filled_its_room_is_not_idle(engine: Engine) -> None:
    dispatcher, executor = await settled(engine, room=1)
    engine.ctx.placer = None
    runs = [await trigger(engine) for _ in range(3)]
    engine.ctx.placer = IdleGate(dispatcher)
    await dispatcher.step()  # took one run, as much as it had room for: more may wait
    assert executor.started == [runs[0].id]
    assert not dispatcher.idle()
    await engine.cancel(runs[0].id)  # room again, but runs wait
    assert not dispatcher.idle()
    assert (await trigger(engine)).status == QUEUED


async def test_no_room_is_not_idle(engine: Engine) -> None:
    executor = Executor(engine, 0)
    dispatcher = Dispatcher(engine, executor)  # type: ignore[arg-type]
    engine.ctx.due.resync(None)
    await dispatcher.step()
    assert not dispatcher.idle()  # it could not look for runnable runs


async def test_a_trigger_while_the_round_starts_a_run_starts_its_own(engine: Engine) -> None:
    # with one HTTP trigger per run, a trigger that went the dispatcher's way made the next one
    # arrive while the round started its run: held back by that run (as if a failed round had
    # left it unstarted), it went the dispatcher's way too, and the next, and so on (issue #13)
    dispatcher, executor = await settled(engine, room=4)
    engine.ctx.placer = None
    waiting = await trigger(engine)  # QUEUED: the round takes it
    engine.ctx.placer = IdleGate(dispatcher)
    during: list[Run] = []
    real = executor.assign

    async def assign(run: Run) -> bool:
        during.append(await trigger(engine))  # a request served while the round starts its run
        return await real(run)

    executor.assign = assign  # type: ignore[method-assign]
    await dispatcher.step()
    assert executor.started == [waiting.id]
    assert [r.status for r in during] == [EXECUTING]  # the round's run, reserved, is not taken
    assert (await engine.queries.runs.get(waiting.id)).status == EXECUTING


async def test_runs_a_failed_round_left_unstarted_hold_triggers_back(engine: Engine) -> None:
    dispatcher, executor = await settled(engine, room=4)
    engine.ctx.placer = None
    waiting = await trigger(engine)
    engine.ctx.placer = IdleGate(dispatcher)

    async def boom(run: Run) -> bool:
        raise OSError("no space left")

    executor.assign = boom  # type: ignore[method-assign]
    with pytest.raises(OSError):
        await dispatcher.step()
    assert not dispatcher.idle()  # the run it took waits to be put back: none may overtake it
    assert (await trigger(engine)).status == QUEUED
    del executor.assign
    await dispatcher.step()  # puts it back, then starts both in order
    assert executor.started[0] == waiting.id
