"""A shared process keeps its runs' short duration timers too (engine/waits.py `by_process`,
docs/waits.md, "Who keeps a wait's timer"): the hold answer says when it may, and its word that
the timer fired completes the waitpoint and resumes the run in place — idempotently with the
daemon's own timer, never for a run that ended or was let go of, never before the wait is due.
On a real store (both backends, the `store` fixture). On PostgreSQL there is no resume in place
(tests/test_engine_resume_in_place.py) and the hold answer gives the process no timer
(tests/test_engine_process_timer_stores.py); a word sent all the same queues the run held and
says False; the dispatcher's dequeue resumes it in its process, and the word, said again, then
says True."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.engine_support import T0, open_engine
from tests.test_engine_resume_in_place import (
    DATETIME_RESULT,
    SharedProcesses,
    dispatched,
    get,
    in_place,
)
from trigger_local.clock import FakeClock
from trigger_local.durations import iso
from trigger_local.engine import AttemptOutcome, Engine, TriggerRequest
from trigger_local.engine.events import Event, RunResumed
from trigger_local.errors import ConflictError, ValidationError
from trigger_local.store import Store
from trigger_local.store.models import COMPLETED, EXECUTING, QUEUED, WP_COMPLETED, Run, TaskDef


@pytest.fixture
async def engine(tmp_path: Path, clock: FakeClock, store: Store) -> AsyncIterator[Engine]:
    eng = await open_engine(tmp_path, clock, store=store, concurrency=4, evict_after_s=30,
                            tasks=[TaskDef(task_id="hello", queue="task/hello")])
    eng.ctx.capability = SharedProcesses()
    yield eng


@pytest.fixture
def published(engine: Engine) -> list[Event]:
    seen: list[Event] = []
    engine.hub.subscribe(Event, seen.append)
    return seen


async def started(engine: Engine, *, shared: bool = True) -> Run:
    run = (await engine.trigger(TriggerRequest(task_id="hello"))).run
    [taken] = [r for r in await engine.dequeue(10) if r.id == run.id]
    assert await engine.start_attempt(taken, "worker_1", 100) is not None
    if shared:
        capability = engine.ctx.capability
        assert isinstance(capability, SharedProcesses)
        capability.holding.add(run.id)
    return run


async def napping(engine: Engine, seconds: float = 1) -> tuple[Run, str]:
    """A run held in a shared process, waiting `seconds`; and its waitpoint."""
    run = await started(engine)
    decision = await engine.wait(run.id, 1, kind="duration", until=iso(T0 + seconds))
    # on PostgreSQL the process is given no timer (no resume in place there); a word it sends
    # all the same (a runtime that kept one) is still answered as below
    assert decision.action == "hold"
    assert decision.until == (None if engine.store.shared else T0 + seconds)
    return run, decision.waitpoint_id


async def history(engine: Engine, run_id: str) -> list[str]:
    return [e.type for e in await engine.queries.events.after(0, run_id=run_id)]


async def test_the_hold_answer_says_when_the_process_may_keep_the_timer(engine: Engine) -> None:
    await napping(engine, 1)
    # due after evict_after_s (30 s): the run is let go of first; the daemon keeps the timer
    run = await started(engine)
    assert (await engine.wait(run.id, 1, kind="duration", until=iso(T0 + 31))).until is None
    # a run in a process of its own (sync, isolated) is never told
    alone = await started(engine, shared=False)
    assert (await engine.wait(alone.id, 1, kind="duration", until=iso(T0 + 1))).until is None
    # a token (or a child run) is not a timer the process can keep
    token_run = await started(engine)
    token, _ = await engine.create_token(timeout="5s")
    decision = await engine.wait(token_run.id, 1, kind="token", waitpoint_id=token.id)
    assert decision.action == "hold" and decision.until is None


async def test_the_process_word_resumes_the_run_in_place_and_tells_nobody(
        engine: Engine, clock: FakeClock, published: list[Event]) -> None:
    run, waitpoint_id = await napping(engine)
    del published[:]
    clock.advance(1)
    assert await engine.timer_due(run.id, 1, waitpoint_id) is in_place(engine)
    wp = await engine.queries.waitpoints.get(waitpoint_id)
    assert wp is not None and wp.status == WP_COMPLETED
    if not in_place(engine):
        await dispatched(engine, run)
        assert await engine.timer_due(run.id, 1, waitpoint_id) is True
    now = await get(engine, run.id)
    assert (now.status, now.worker_id) == (EXECUTING, "worker_1")
    assert (await engine.wait_result(run.id, waitpoint_id)) == DATETIME_RESULT
    if not in_place(engine):
        return
    [resumed] = [e for e in published if isinstance(e, RunResumed)]
    assert resumed.previous == "WAITING" and resumed.extra["result"] is None  # no message
    events = await engine.queries.events.after(0, run_id=run.id)
    assert [e.type for e in events][-2:] == ["run.waiting", "run.resumed"]
    assert events[-1].data["resumed_by"] == "process"
    # the daemon's own timer comes after it: nothing is due any more, nothing changes
    assert await engine.tick_timers() == 0
    # the same word again (sent twice): nothing changes
    before = await history(engine, run.id)
    assert await engine.timer_due(run.id, 1, waitpoint_id) is True
    assert await history(engine, run.id) == before
    # and its completion is applied
    done = await engine.finish_attempt(run.id, 1, AttemptOutcome(ok=True, output="{}"))
    assert done.status == COMPLETED


async def test_the_word_after_the_daemons_timer_changes_nothing(
        engine: Engine, clock: FakeClock, published: list[Event]) -> None:
    run, waitpoint_id = await napping(engine)
    clock.advance(1)
    assert await engine.tick_timers() == 1  # resumed in place, with its result for the process
    if not in_place(engine):  # queued held: the word waits for the dequeue's resume
        before = await history(engine, run.id)
        assert await engine.timer_due(run.id, 1, waitpoint_id) is False
        assert await history(engine, run.id) == before
        await dispatched(engine, run)
        assert await engine.timer_due(run.id, 1, waitpoint_id) is True
        assert (await get(engine, run.id)).status == EXECUTING
        return
    [resumed] = [e for e in published if isinstance(e, RunResumed)]
    assert resumed.extra["result"] == DATETIME_RESULT
    before = await history(engine, run.id)
    assert await engine.timer_due(run.id, 1, waitpoint_id) is True
    assert await history(engine, run.id) == before
    assert (await get(engine, run.id)).status == EXECUTING


async def test_a_run_canceled_while_it_waited_is_gone(engine: Engine, clock: FakeClock) -> None:
    run, waitpoint_id = await napping(engine)
    await engine.cancel(run.id)
    clock.advance(1)
    with pytest.raises(ConflictError):
        await engine.timer_due(run.id, 1, waitpoint_id)
    assert (await get(engine, run.id)).status == "CANCELED"


async def test_an_evicted_run_is_gone_for_its_process(engine: Engine, clock: FakeClock) -> None:
    run, waitpoint_id = await napping(engine)
    assert await engine.records.evict(run.id, 1, "worker_1", "memory pressure") is not None
    clock.advance(1)
    with pytest.raises(ConflictError):  # its next attempt replays it, in whatever process
        await engine.timer_due(run.id, 1, waitpoint_id)


async def test_a_word_before_the_wait_is_due_is_refused(engine: Engine,
                                                        clock: FakeClock) -> None:
    run, waitpoint_id = await napping(engine, 10)
    with pytest.raises(ValidationError):
        await engine.timer_due(run.id, 1, waitpoint_id)
    wp = await engine.queries.waitpoints.get(waitpoint_id)
    assert wp is not None and wp.status == "WAITING"


async def test_a_run_without_a_slot_waits_for_the_dispatcher(engine: Engine,
                                                             clock: FakeClock) -> None:
    run, waitpoint_id = await napping(engine)
    await engine.set_queue_paused("task/hello", True)
    clock.advance(1)
    assert await engine.timer_due(run.id, 1, waitpoint_id) is False
    now = await get(engine, run.id)
    assert (now.status, now.snapshot_kind) == (QUEUED, "queued_held")
    # said again, still not gone: the process waits for its resume
    assert await engine.timer_due(run.id, 1, waitpoint_id) is False
    await engine.set_queue_paused("task/hello", False)
    [dequeued] = await engine.dequeue(0, 1)
    assert dequeued.id == run.id and await engine.resume_held(dequeued) is not None
    assert await engine.timer_due(run.id, 1, waitpoint_id) is True


async def test_a_wait_of_another_run_is_not_found(engine: Engine, clock: FakeClock) -> None:
    run, _ = await napping(engine)
    _, other = await napping(engine)
    clock.advance(1)
    with pytest.raises(Exception, match="not a duration wait"):
        await engine.timer_due(run.id, 1, other)
