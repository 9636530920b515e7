"""A trigger's unit of work gives the event loop no turn after its commit (engine/front.py
`trigger_many`, issue #13): the trigger returns in the turn that published its events, so its
route writes the answer before anything the commit woke (the dispatcher's round, a started
run's assignment) takes the loop. Other units still give that turn (a dispatcher round running
unit after unit lets completions in)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from engine_support import T0, open_engine

from trigger_local.clock import FakeClock
from trigger_local.engine import Engine, TriggerRequest
from trigger_local.engine.events import RunCreated
from trigger_local.store.models import TaskDef


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[Engine]:
    eng = await open_engine(tmp_path, FakeClock(T0),
                            tasks=[TaskDef(task_id="hello", queue="task/hello")])
    yield eng
    await eng.store.close()


async def test_the_trigger_returns_before_what_its_commit_woke(engine: Engine) -> None:
    order: list[str] = []
    loop = asyncio.get_running_loop()
    # as the dispatcher's wake-up and the pool's hand are: work for the loop's next turn
    engine.hub.subscribe(RunCreated, lambda e: loop.call_soon(order.append, "woken work"))
    run = (await engine.trigger(TriggerRequest(task_id="hello"))).run
    order.append("trigger returned")
    await asyncio.sleep(0)
    assert order == ["trigger returned", "woken work"]
    assert (await engine.queries.runs.get(run.id)) is not None  # committed before it returned


async def test_other_units_still_give_the_loop_a_turn(engine: Engine) -> None:
    order: list[str] = []
    asyncio.get_running_loop().call_soon(order.append, "waiting work")
    await engine.tick_timers()  # a unit of the dispatcher's
    order.append("unit returned")
    assert order == ["waiting work", "unit returned"]
