"""A dispatcher round starts no more new runs than the executor has room for, whatever the
number of runs held waiting in their processes (issue #13: with 1,000 runs waiting 1 s, the
held runs' share of the round let new runs through, each starting a task process of its own —
some 80 processes booting on 2 cores, and every wait seconds late); a held run resumes in its
process even when there is no room for a new one."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from engine_support import T0, open_engine

from trigger_local.clock import FakeClock
from trigger_local.dispatch.dispatcher import Dispatcher
from trigger_local.engine import Engine, TriggerRequest
from trigger_local.store.models import EXECUTING, QUEUED, WAITING, Run, TaskDef


class SmallExecutor:
    """Room for `room` new runs; holds `held` waiting runs in worker_1 (as a pool's describe
    says); records what it was asked to start and resume."""

    name = "probe"

    def __init__(self, engine: Engine, room: int, held: int) -> None:
        self.engine, self.room, self.held = engine, room, held
        self.assigned: list[str] = []
        self.resumed: list[str] = []

    def capacity(self) -> int:
        return self.room - len(self.assigned)

    def describe(self) -> dict[str, object]:
        return {"held_runs": self.held}

    def holds(self, worker_id: str) -> bool:
        return worker_id == "worker_1"

    async def assign(self, run: Run) -> bool:
        self.assigned.append(run.id)
        return await self.engine.start_attempt(run, "worker_2", 2) is not None

    async def resume(self, run: Run) -> bool:
        self.resumed.append(run.id)
        return await self.engine.resume_held(run) is not None


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[Engine]:
    eng = await open_engine(tmp_path, FakeClock(T0),
                            tasks=[TaskDef(task_id="hello", queue="task/hello")])
    yield eng
    await eng.store.close()


async def trigger(engine: Engine) -> str:
    run_id = (await engine.trigger(TriggerRequest(task_id="hello"))).run.id
    # queue order is (queued_at, id), and ids made in one millisecond are in random order
    engine.clock.advance(0.001)  # type: ignore[attr-defined]
    return run_id


async def status(engine: Engine, run_id: str) -> str:
    run = await engine.queries.runs.get(run_id)
    assert run is not None
    return run.status


async def test_held_runs_do_not_let_more_new_runs_start_than_there_is_room_for(
        engine: Engine) -> None:
    executor = SmallExecutor(engine, room=1, held=50)
    queued = [await trigger(engine) for _ in range(10)]
    await Dispatcher(engine, executor).tick()  # type: ignore[arg-type]
    assert executor.assigned == queued[:1]
    assert [await status(engine, r) for r in queued[1:]] == [QUEUED] * 9


async def test_a_held_run_resumes_in_its_process_without_room_for_new_ones(
        engine: Engine) -> None:
    waiting = await trigger(engine)
    [run] = await engine.dequeue(1)
    assert await engine.start_attempt(run, "worker_1", 1) is not None
    token, _ = await engine.create_token()
    decision = await engine.wait(waiting, 1, kind="token", waitpoint_id=token.id)
    assert decision.action == "hold" and await status(engine, waiting) == WAITING
    newer = [await trigger(engine) for _ in range(3)]
    await engine.complete_token(token.id, None)
    executor = SmallExecutor(engine, room=0, held=1)
    await Dispatcher(engine, executor).tick()  # type: ignore[arg-type]
    assert executor.resumed == [waiting] and executor.assigned == []
    assert await status(engine, waiting) == EXECUTING
    assert [await status(engine, r) for r in newer] == [QUEUED] * 3
