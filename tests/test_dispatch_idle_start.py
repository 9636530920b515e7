"""An idle daemon's trigger→start (issue #13): the trigger wakes the dispatcher (no polling),
the one run's start is committed at once (not held for the group commit's window, which
gathers concurrent callers for throughput), and its assignment goes out before the
dispatcher's next round. Behaviour only: no wall-clock figure is asserted."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from engine_support import T0, ProbeExecutor, open_engine

from trigger_local.clock import FakeClock
from trigger_local.dispatch import dispatcher as dispatcher_module
from trigger_local.dispatch.dispatcher import Dispatcher
from trigger_local.engine import Engine, TriggerRequest
from trigger_local.engine.unit import Tx
from trigger_local.store.models import EXECUTING, Run, TaskDef


class RecordingExecutor(ProbeExecutor):
    """Starts every run on worker_1 and, as the pool does, hands its assignment to a poll
    that another task answers (a callback on the loop's next turn)."""

    room = 4

    def __init__(self, engine: Engine, order: list[str]) -> None:
        self.engine, self.order = engine, order
        self.started: list[str] = []

    async def assign(self, run: Run) -> bool:
        if await self.engine.start_attempt(run, "worker_1", 1) is None:
            return True
        self.started.append(run.id)
        asyncio.get_running_loop().call_soon(self.order.append, f"sent {run.id}")
        return True


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[Engine]:
    eng = await open_engine(tmp_path, FakeClock(T0),
                            tasks=[TaskDef(task_id="hello", queue="task/hello")])
    yield eng
    await eng.store.close()


async def wait_for(condition: object, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + 60  # generous: CI runs under load
    while not condition():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, what
        await asyncio.sleep(0.005)


async def test_a_trigger_wakes_a_sleeping_dispatcher_without_a_tick(
        engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    # the safety-net sleep is an hour: only the trigger's event can start the run in time
    monkeypatch.setattr(dispatcher_module, "MAX_SLEEP_S", 3600.0)
    executor = RecordingExecutor(engine, [])
    dispatcher = Dispatcher(engine, executor)  # type: ignore[arg-type]
    engine.ctx.due.resync(None)  # nothing is due: the dispatcher has no timer to wake for
    await dispatcher.step()  # an idle round: the next step sleeps
    assert dispatcher._idle
    loop_task = asyncio.create_task(dispatcher.step())
    await asyncio.sleep(0.01)
    assert not loop_task.done()  # asleep
    run_id = (await engine.trigger(TriggerRequest(task_id="hello"))).run.id
    await wait_for(lambda: executor.started == [run_id], "the trigger did not wake the loop")
    await asyncio.wait_for(loop_task, 60)
    run = await engine.queries.runs.get(run_id)
    assert run is not None and run.status == EXECUTING


async def test_a_lone_start_is_committed_without_waiting_for_the_group_window(
        engine: Engine) -> None:
    order: list[str] = []

    async def part(tx: Tx) -> str:
        order.append("committed")
        return "done"

    # a callback already waiting on the loop: a part held for the group's window runs after it
    asyncio.get_running_loop().call_soon(order.append, "other")
    with engine.group.alone():
        assert await engine.group.run(part) == "done"
    assert order[0] == "committed"
    # outside `alone` (or with others waiting) parts still gather: one transaction for both
    before = engine.group.batches
    assert await asyncio.gather(engine.group.run(part), engine.group.run(part)) == ["done"] * 2
    assert engine.group.batches == before + 1


async def test_parts_arriving_during_a_lone_commit_are_committed_after_it(
        engine: Engine) -> None:
    order: list[str] = []
    later: list[asyncio.Task[str]] = []

    async def other(tx: Tx) -> str:
        order.append("other")
        return "other"

    async def first(tx: Tx) -> str:
        order.append("first")
        # another caller arrives while this part's transaction is open
        later.append(asyncio.create_task(engine.group.run(other)))
        await asyncio.sleep(0)
        return "first"

    with engine.group.alone():
        assert await engine.group.run(first) == "first"
    assert await asyncio.wait_for(later[0], 60) == "other"
    assert order == ["first", "other"]


async def test_the_assignment_goes_out_before_the_next_rounds_dequeue(
        engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    order: list[str] = []
    real_dequeue = engine.dequeue

    async def dequeue(limit: int, held: int = 0, *, reserve: bool = False) -> list[Run]:
        order.append("dequeue")
        return await real_dequeue(limit, held, reserve=reserve)

    monkeypatch.setattr(engine, "dequeue", dequeue)
    executor = RecordingExecutor(engine, order)
    dispatcher = Dispatcher(engine, executor)  # type: ignore[arg-type]
    run_id = (await engine.trigger(TriggerRequest(task_id="hello"))).run.id
    await dispatcher.step()  # starts the run
    await dispatcher.step()  # the next round finds nothing
    assert order == ["dequeue", f"sent {run_id}", "dequeue"]
