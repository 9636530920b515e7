"""Typed events: `tx.record(event)` writes the durable row and publishes the same event after
the commit; subscribers match classes; a listener that raises harms nobody else."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.engine_support import T0, open_engine
from trigger_local.clock import FakeClock
from trigger_local.dispatch.dispatcher import wakes
from trigger_local.engine import AttemptOutcome, Engine, TriggerRequest
from trigger_local.engine.events import (
    AttemptAborted,
    CheckpointFailed,
    CheckpointRecorded,
    Event,
    QueuePaused,
    RunCreated,
    RunInterrupted,
    RunRestored,
    RunResumed,
    RunStatusChanged,
    RunUnblocked,
)
from trigger_local.engine.hub import run_key
from trigger_local.store import Store
from trigger_local.store.models import Checkpoint, LogEntry, Run, TaskDef


@pytest.fixture
async def engine(tmp_path: Path, clock: FakeClock, store: Store) -> AsyncIterator[Engine]:
    retry = {"max_attempts": 2, "randomize": False}
    eng = await open_engine(tmp_path, clock, store=store, tasks=[
        TaskDef(task_id="hello", queue="task/hello", retry=retry)])
    yield eng
    await eng.store.close()


@pytest.fixture
def seen(engine: Engine) -> list[Event]:
    found: list[Event] = []
    engine.hub.subscribe(Event, found.append)
    return found


async def started(engine: Engine, worker_id: str = "worker_1") -> Run:
    run = (await engine.trigger(TriggerRequest(task_id="hello"))).run
    [dequeued] = await engine.dequeue(1)
    result = await engine.start_attempt(dequeued, worker_id, 1)
    assert result is not None and result[0].id == run.id
    return result[0]


def moves(events: list[Event], run_id: str) -> list[RunStatusChanged]:
    return [e for e in events if isinstance(e, RunStatusChanged) and e.run_id == run_id]


async def test_every_published_event_is_the_row_it_stored(engine: Engine,
                                                          seen: list[Event]) -> None:
    """One call records a change: the durable rows and the published events are the same, in
    the same order (notices, which are not stored, aside)."""
    run = await started(engine)
    token, _ = await engine.create_token()
    await engine.wait(run.id, 1, kind="token", waitpoint_id=token.id)
    await engine.complete_token(token.id, '"ok"')
    [dequeued] = await engine.dequeue(1)
    await engine.resume_held(dequeued)
    await engine.update_metadata(run.id, {"step": 2})
    await engine.append_logs([LogEntry(run_id=run.id, at=T0, level="info", message="hi")])
    await engine.finish_attempt(run.id, 1, AttemptOutcome(ok=True, output="1"))
    await engine.set_queue_paused("hello", True)
    rows = [(r.run_id, r.type, r.data) for r in await engine.queries.events.after(0)]
    published = [(e.subject_run, e.type, e.data()) for e in seen if e.type is not None]
    assert published == rows[-len(published):]
    assert [t for _, t, _ in published] == [
        "run.created", "run.executing", "waitpoint.created", "run.waiting",
        "waitpoint.completed", "run.unblocked", "run.resumed", "run.metadata",
        "run.logs", "run.completed", "queue.paused"]
    assert isinstance(seen[-1], QueuePaused) and seen[-1].paused


async def test_a_listener_that_raises_breaks_neither_the_request_nor_the_others(
        engine: Engine, seen: list[Event]) -> None:
    def broken(_event: Event) -> None:
        raise RuntimeError("a subscriber's bug")

    engine.hub.subscribe(RunCreated, broken)
    after: list[Event] = []
    engine.hub.subscribe(Event, after.append)  # subscribed after the broken one
    result = await engine.trigger(TriggerRequest(task_id="hello"))
    assert await engine.queries.runs.get(result.run.id) is not None
    assert [type(e) for e in seen] == [type(e) for e in after] == [RunCreated]


async def test_the_engine_decides_when_an_attempt_is_over(engine: Engine, clock: FakeClock,
                                                          seen: list[Event]) -> None:
    """The executor frees a process on `attempt_ended`; it never looks at statuses for it."""
    run = await started(engine)
    token, _ = await engine.create_token()
    await engine.wait(run.id, 1, kind="token", waitpoint_id=token.id)  # held: not over
    await engine.complete_token(token.id, None)  # queued_held: still its process's
    [dequeued] = await engine.dequeue(1)
    await engine.resume_held(dequeued)
    await engine.finish_attempt(run.id, 1, AttemptOutcome(ok=False, error={"message": "x"}))
    ended = [(e.status, e.attempt_ended, e.worker_id) for e in moves(seen, run.id)]
    assert ended == [("DEQUEUED", False, None), ("EXECUTING", False, None),
                     ("WAITING", False, "worker_1"), ("QUEUED", False, "worker_1"),
                     ("DEQUEUED", False, "worker_1"), ("EXECUTING", False, "worker_1"),
                     ("DELAYED", True, "worker_1")]  # the retry: its process may take another
    clock.advance(60)  # the retry's backoff
    second = await started_again(engine, run.id, "worker_2")
    await engine.worker_lost(second.id, 2, "the daemon stopped", interrupted=True)
    [interrupted] = [e for e in moves(seen, run.id) if isinstance(e, RunInterrupted)]
    assert (interrupted.status, interrupted.attempt_ended, interrupted.worker_id) == (
        "QUEUED", True, "worker_2")


async def started_again(engine: Engine, run_id: str, worker_id: str) -> Run:
    await engine.tick_timers()
    [dequeued] = await engine.dequeue(1)
    result = await engine.start_attempt(dequeued, worker_id, 2)
    assert result is not None and result[0].id == run_id
    return result[0]


async def test_a_cancel_tells_the_executor_to_kill_the_process(engine: Engine,
                                                               seen: list[Event]) -> None:
    run = await started(engine)
    await engine.cancel(run.id)
    [canceled] = [e for e in moves(seen, run.id) if e.status == "CANCELED"]
    assert canceled.attempt_ended and wakes(canceled)
    assert AttemptAborted(run_id=run.id, worker_id="worker_1", reason="canceled by request") \
        in seen


async def test_a_held_runs_poll_wakes_when_it_resumes(engine: Engine) -> None:
    run = await started(engine)
    token, _ = await engine.create_token()
    await engine.wait(run.id, 1, kind="token", waitpoint_id=token.id)
    poll = asyncio.ensure_future(engine.hub.wait(run_key(run.id), 30))
    await asyncio.sleep(0)  # one loop turn: the poll is listening (as api/worker.py's is)
    await engine.complete_token(token.id, None)
    [dequeued] = await engine.dequeue(1)
    assert not poll.done()  # unblocked, but no slot yet: nothing to answer
    await engine.resume_held(dequeued)
    assert await asyncio.wait_for(poll, 5) is True


async def test_checkpoint_records_are_published(engine: Engine, seen: list[Event]) -> None:
    """Before, a restore (and a checkpoint of a run that no longer waited) wrote its row and
    told nobody."""
    run = await started(engine)
    await engine.checkpoint_refused(run.id, "holds a TCP connection")
    ck = Checkpoint(id="checkpoint_1", run_id=run.id, attempt=1, worker_id="worker_1", pid=1,
                    path="/tmp/none", status="", created_at=T0, size_bytes=10, dump_ms=5.0)
    await engine.begin_checkpoint(ck)
    assert await engine.record_checkpoint(ck)  # the run is EXECUTING: no status change
    await engine.checkpoint_restored(ck.id, 12.345)
    published = [e for e in seen if isinstance(e, CheckpointFailed | CheckpointRecorded
                                               | RunRestored)]
    assert [e.type for e in published] == ["run.checkpoint_failed", "run.checkpointed",
                                           "run.restored"]
    rows = [r for r in await engine.queries.events.after(0, run_id=run.id)
            if r.type in ("run.checkpoint_failed", "run.checkpointed", "run.restored")]
    assert [r.data for r in rows] == [e.data() for e in published]
    assert rows[-1].data == {"run_id": run.id, "checkpoint_id": "checkpoint_1",
                             "restore_ms": 12.3}


async def test_subscribers_match_classes_and_their_subclasses(engine: Engine) -> None:
    moved: list[RunStatusChanged] = []
    resumed: list[RunResumed] = []
    engine.hub.subscribe(RunStatusChanged, moved.append)
    engine.hub.subscribe(RunResumed, resumed.append)
    run = await started(engine)
    token, _ = await engine.create_token()
    await engine.wait(run.id, 1, kind="token", waitpoint_id=token.id)
    await engine.complete_token(token.id, None)
    [dequeued] = await engine.dequeue(1)
    await engine.resume_held(dequeued)
    assert [type(e) for e in resumed] == [RunResumed]
    assert RunUnblocked in {type(e) for e in moved} and resumed[0] in moved
    assert all(not isinstance(e, RunCreated) for e in moved)
