"""One timer per wait: a duration wait kept by its shared process (the run's wait said
`keepsTimer`) is not also ended by the daemon's own timer at the same instant. The daemon's
timer gives the process `process_timer_grace_s` to say its timer fired (`timerDue`,
engine/waits.py `by_process`), and stays the backstop: after the grace (a stopped process) it
resumes the run itself, and a run its process no longer holds (evicted), or whose process keeps
no timer (`TRIGGER_LOCAL_WORKER_TIMERS=off`), is ended on time as before. On both stores."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.engine_support import T0, open_engine
from tests.test_engine_resume_in_place import DATETIME_RESULT, SharedProcesses, get
from trigger_local.clock import FakeClock
from trigger_local.durations import iso
from trigger_local.engine import Engine, TriggerRequest
from trigger_local.engine.due import waitpoint_timer
from trigger_local.engine.events import Event, RunResumed
from trigger_local.store.models import EXECUTING, WAITING, WP_WAITING, Run, TaskDef

GRACE_S = 2.0


@pytest.fixture
async def engine(tmp_path: Path, clock: FakeClock) -> AsyncIterator[Engine]:
    # SQLite: a run resumes in place there; on PostgreSQL a completed wait goes through the
    # dequeue (tests/test_engine_pg_resume_race.py)
    eng = await open_engine(tmp_path, clock, concurrency=4, evict_after_s=30,
                            process_timer_grace_s=GRACE_S,
                            tasks=[TaskDef(task_id="hello", queue="task/hello")])
    eng.ctx.capability = SharedProcesses()
    yield eng


@pytest.fixture
def resumed(engine: Engine) -> list[RunResumed]:
    seen: list[RunResumed] = []
    engine.hub.subscribe(Event, lambda e: seen.append(e) if isinstance(e, RunResumed) else None)
    return seen


async def napping(engine: Engine, *, keeps_timer: bool) -> tuple[Run, str]:
    """A run held in a shared process, waiting 1 s; and its waitpoint."""
    run = (await engine.trigger(TriggerRequest(task_id="hello"))).run
    [taken] = [r for r in await engine.dequeue(10) if r.id == run.id]
    assert await engine.start_attempt(taken, "worker_1", 100) is not None
    capability = engine.ctx.capability
    assert isinstance(capability, SharedProcesses)
    capability.holding.add(run.id)
    decision = await engine.wait(run.id, 1, kind="duration", until=iso(T0 + 1),
                                 keeps_timer=keeps_timer)
    assert decision.action == "hold" and decision.until == T0 + 1
    return run, decision.waitpoint_id


async def waiting(engine: Engine, run_id: str, waitpoint_id: str) -> bool:
    wp = await engine.queries.waitpoints.get(waitpoint_id)
    return (await get(engine, run_id)).status == WAITING and wp is not None \
        and wp.status == WP_WAITING


async def test_the_daemons_timer_leaves_a_wait_its_process_keeps_to_the_process(
        engine: Engine, clock: FakeClock, resumed: list[RunResumed]) -> None:
    run, waitpoint_id = await napping(engine, keeps_timer=True)
    # the dispatcher sleeps until the grace is over, not until the wait is due
    assert engine.ctx.due.at(waitpoint_timer(waitpoint_id)) == T0 + 1 + GRACE_S
    clock.advance(1)
    assert await engine.tick_timers() == 0  # due, but the process keeps it: not ended here
    assert await waiting(engine, run.id, waitpoint_id)
    clock.advance(0.01)  # the process's timer fired: its word resumes the run, once
    assert await engine.timer_due(run.id, 1, waitpoint_id) is True
    assert [e.extra["resumed_by"] for e in resumed] == ["process"]
    assert engine.ctx.due.at(waitpoint_timer(waitpoint_id)) is None  # nothing left to fire
    clock.advance(GRACE_S)
    assert await engine.tick_timers() == 0
    assert len(resumed) == 1 and (await get(engine, run.id)).status == EXECUTING


async def test_after_the_grace_the_daemons_timer_resumes_the_run_itself(
        engine: Engine, clock: FakeClock, resumed: list[RunResumed]) -> None:
    """A process that did not say its timer fired (stopped, busy): the backstop."""
    run, waitpoint_id = await napping(engine, keeps_timer=True)
    clock.advance(1 + GRACE_S / 2)
    assert await engine.tick_timers() == 0
    clock.advance(GRACE_S / 2)
    assert await engine.tick_timers() == 1
    [event] = resumed
    assert event.extra["result"] == DATETIME_RESULT  # sent to the process: it was not told
    assert (await get(engine, run.id)).status == EXECUTING
    assert await engine.timer_due(run.id, 1, waitpoint_id) is True  # its late word: nothing new
    assert len(resumed) == 1


async def test_a_process_that_keeps_no_timer_gets_the_daemons_on_time(
        engine: Engine, clock: FakeClock, resumed: list[RunResumed]) -> None:
    run, waitpoint_id = await napping(engine, keeps_timer=False)
    assert engine.ctx.due.at(waitpoint_timer(waitpoint_id)) == T0 + 1
    clock.advance(1)
    assert await engine.tick_timers() == 1
    assert [e.extra["result"] for e in resumed] == [DATETIME_RESULT]
    assert (await get(engine, run.id)).status == EXECUTING


async def test_a_run_its_process_let_go_of_is_ended_on_time(
        engine: Engine, clock: FakeClock) -> None:
    run, waitpoint_id = await napping(engine, keeps_timer=True)
    assert await engine.records.evict(run.id, 1, "worker_1", "memory pressure") is not None
    capability = engine.ctx.capability
    assert isinstance(capability, SharedProcesses)
    capability.holding.discard(run.id)  # the executor no longer holds it
    # the dispatcher wakes at the due time again, not a grace later
    assert engine.ctx.due.at(waitpoint_timer(waitpoint_id)) == T0 + 1
    clock.advance(1)
    assert await engine.tick_timers() == 1
    wp = await engine.queries.waitpoints.get(waitpoint_id)
    assert wp is not None and wp.status != WP_WAITING
