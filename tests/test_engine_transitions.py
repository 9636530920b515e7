"""The transition table and `_move`, its one compare-and-set: what is refused, and that every
change leaves a snapshot and an event row."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.engine_support import T0, open_engine, snapshots_of
from trigger_local.clock import FakeClock
from trigger_local.engine import AttemptOutcome, Engine, TriggerRequest, runs
from trigger_local.engine.states import TRANSITIONS, allowed, kind_for
from trigger_local.errors import ConflictError
from trigger_local.ids import new_id
from trigger_local.store import Store
from trigger_local.store.models import (
    CANCELED,
    COMPLETED,
    DELAYED,
    DEQUEUED,
    EXECUTING,
    EXPIRED,
    FINAL_STATUSES,
    PENDING_VERSION,
    QUEUED,
    WAITING,
    Run,
    TaskDef,
)

ALL_STATUSES = sorted(FINAL_STATUSES
                      | {PENDING_VERSION, DELAYED, QUEUED, DEQUEUED, EXECUTING, WAITING})


@pytest.fixture
async def engine(tmp_path: Path, clock: FakeClock, store: Store) -> AsyncIterator[Engine]:
    retry = {"max_attempts": 2, "randomize": False}
    eng = await open_engine(tmp_path, clock, store=store, tasks=[
        TaskDef(task_id="hello", queue="task/hello", retry=retry)])
    yield eng
    await eng.store.close()


async def run_in(engine: Engine, status: str) -> Run:
    """A run put straight into `status` (how it got there is not what these tests are about)."""
    run = Run(id=new_id("run"), task_id="hello", status=status, snapshot_id=new_id("snapshot"),
              snapshot_kind=kind_for(status), queue="task/hello", created_at=T0, updated_at=T0,
              queued_at=T0)
    async with engine.store.tx() as ops:
        await ops.runs.insert(run)
    return run


async def move(engine: Engine, run: Run, status: str) -> Run:
    async with engine._unit() as tx:
        return await runs.move(tx, run, status)


def test_final_statuses_have_no_way_out() -> None:
    for final in FINAL_STATUSES:
        assert final not in TRANSITIONS
        assert not any(allowed(final, target) for target in ALL_STATUSES)
    assert all(target in ALL_STATUSES for targets in TRANSITIONS.values() for target in targets)


@pytest.mark.parametrize("from_status", ALL_STATUSES)
async def test_every_disallowed_move_raises_and_changes_nothing(engine: Engine,
                                                                from_status: str) -> None:
    for to_status in ALL_STATUSES:
        if allowed(from_status, to_status):
            continue
        run = await run_in(engine, from_status)
        before = await engine.queries.events.last_seq()
        with pytest.raises(ConflictError, match=f"cannot become {to_status}"):
            await move(engine, run, to_status)
        stored = await engine.queries.runs.get(run.id)
        assert stored is not None and (stored.status, stored.snapshot_id) \
            == (from_status, run.snapshot_id)
        assert await engine.queries.events.last_seq() == before


@pytest.mark.parametrize("from_status", sorted(TRANSITIONS))
async def test_every_allowed_move_applies(engine: Engine, clock: FakeClock,
                                          from_status: str) -> None:
    for to_status in sorted(TRANSITIONS[from_status]):
        run = await run_in(engine, from_status)
        old_snapshot = run.snapshot_id
        clock.advance(1)
        moved = await move(engine, run, to_status)
        stored = await engine.queries.runs.get(run.id)
        assert stored is not None
        assert (stored.status, stored.snapshot_id, stored.updated_at) \
            == (to_status, moved.snapshot_id, clock.now())
        assert stored.snapshot_id != old_snapshot and stored.snapshot_kind == kind_for(to_status)
        [event] = await engine.queries.events.after(0, run_id=run.id)
        assert (event.type, event.data["from"], event.data["status"]) == (
            f"run.{to_status.lower()}", from_status, to_status)
        [snapshot] = await snapshots_of(engine, run.id)
        assert (snapshot["id"], snapshot["status"]) == (stored.snapshot_id, to_status)


async def test_a_stale_snapshot_is_refused(engine: Engine) -> None:
    run = await run_in(engine, QUEUED)
    stale = await engine.queries.runs.get(run.id)
    assert stale is not None
    await move(engine, run, DEQUEUED)  # someone else moved it first
    with pytest.raises(ConflictError, match="changed while this request ran"):
        await move(engine, stale, CANCELED)  # allowed from QUEUED, but QUEUED is gone
    stored = await engine.queries.runs.get(run.id)
    assert stored is not None and stored.status == DEQUEUED \
        and stored.snapshot_id == run.snapshot_id
    assert [e.type for e in await engine.queries.events.after(0, run_id=run.id)] == ["run.dequeued"]


async def test_a_refused_move_rolls_back_the_whole_transaction(engine: Engine) -> None:
    first, second = await run_in(engine, QUEUED), await run_in(engine, COMPLETED)
    with pytest.raises(ConflictError):
        async with engine._unit() as tx:
            await runs.move(tx, first, EXPIRED)
            await runs.move(tx, second, QUEUED)
    stored = await engine.queries.runs.get(first.id)
    assert stored is not None and stored.status == QUEUED
    assert await engine.queries.events.after(0) != []  # only the version registration
    assert all(e.run_id is None for e in await engine.queries.events.after(0))


async def test_every_change_appends_one_event_and_one_snapshot(engine: Engine,
                                                               clock: FakeClock) -> None:
    """Every change but DEQUEUED, which the start follows at once: it is published as a notice
    (`RunDequeued`) and leaves no row; the start says `from: DEQUEUED` (engine/runs.py)."""
    run = (await engine.trigger(TriggerRequest(task_id="hello"))).run
    [dequeued] = await engine.dequeue(1)
    assert await engine.start_attempt(dequeued, "worker_1", None) is not None
    clock.advance(1)
    await engine.wait(run.id, 1, kind="duration", until="5s")
    clock.advance(5)
    await engine.tick_timers()
    [again] = await engine.dequeue(1)
    await engine.resume_held(again)
    await engine.finish_attempt(run.id, 1, AttemptOutcome(ok=False, error={"message": "x"}))
    clock.advance(1)
    await engine.tick_timers()
    [third] = await engine.dequeue(1)
    assert await engine.start_attempt(third, "worker_1", None) is not None
    await engine.finish_attempt(run.id, 2, AttemptOutcome(ok=True))
    events = await engine.queries.events.after(0, run_id=run.id)
    assert [e.type for e in events] == [
        "run.created", "run.executing", "run.waiting", "run.unblocked",
        "run.resumed", "run.retrying", "run.queued", "run.executing",
        "run.completed"]
    statuses = [s["status"] for s in await snapshots_of(engine, run.id)]
    assert statuses == [QUEUED, EXECUTING, WAITING, QUEUED, EXECUTING, DELAYED, QUEUED,
                        EXECUTING, COMPLETED]
    assert [e.data["status"] for e in events] == statuses
    assert [e.data["from"] for e in events if e.type in ("run.executing", "run.resumed")] \
        == [DEQUEUED] * 3
    stored = await engine.queries.runs.get(run.id)
    assert stored is not None \
        and stored.snapshot_id == (await snapshots_of(engine, run.id))[-1]["id"]
