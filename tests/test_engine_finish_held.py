"""A completion moves the copy of its run that the attempt's start left
(`EngineContext.started`, engine/attempts.py `finish_current`) instead of reading the row: the
copy is dropped by the run's next move and by a write that keeps its snapshot id, and a copy
the row no longer matches is refused by the move's compare-and-set before anything is written.
Both stores."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.engine_support import T0, open_engine
from tests.test_engine_hot_path import Trace
from trigger_local.clock import FakeClock
from trigger_local.engine import AttemptOutcome, Engine, TriggerRequest
from trigger_local.errors import ConflictError
from trigger_local.store import SqliteStore, Store
from trigger_local.store.models import CANCELED, COMPLETED, EXECUTING, WP_COMPLETED, TaskDef

DONE = AttemptOutcome(ok=True, output='{"a": 1}')


async def _started(engine: Engine) -> str:
    await engine.trigger(TriggerRequest(task_id="noop"))
    [taken] = await engine.dequeue(1)
    assert await engine.start_attempt(taken, "worker_1", 1) is not None
    return taken.id


async def _engine(tmp_path: Path, store: Store) -> Engine:
    return await open_engine(tmp_path, FakeClock(T0), store=store,
                             tasks=[TaskDef(task_id="noop", queue="task/noop")])


async def test_a_completion_after_a_metadata_write_reads_the_run(tmp_path: Path,
                                                                 store: Store) -> None:
    """Metadata keeps the snapshot id: the start's copy is dropped, the completion reads the row
    and the metadata stands (a copy moved blindly would not have seen it)."""
    engine = await _engine(tmp_path, store)
    run_id = await _started(engine)
    # a shared store keeps no copy: another daemon's writes are not seen here
    assert (run_id in engine.ctx.started) == (not store.shared)
    await engine.update_metadata(run_id, {"progress": 1})
    assert run_id not in engine.ctx.started
    trace = Trace(engine) if isinstance(store, SqliteStore) else None
    done = await engine.finish_attempt(run_id, 1, DONE)
    assert done.status == COMPLETED and done.metadata == {"progress": 1}
    if trace is not None:
        assert trace.total() and trace.seen["SELECT runs"] == 1
    stored = await engine.queries.runs.get(run_id)
    assert stored is not None and stored.status == COMPLETED
    assert stored.metadata == {"progress": 1} and stored.output == '{"a": 1}'
    [attempt] = await engine.queries.attempts.for_run(run_id)
    assert attempt.status == COMPLETED and attempt.finished_at is not None


async def test_a_completion_of_a_canceled_run_is_refused_and_writes_nothing(
        tmp_path: Path, store: Store) -> None:
    engine = await _engine(tmp_path, store)
    run_id = await _started(engine)
    await engine.cancel(run_id)
    assert run_id not in engine.ctx.started
    with pytest.raises(ConflictError):
        await engine.finish_attempt(run_id, 1, DONE)
    stored = await engine.queries.runs.get(run_id)
    assert stored is not None and stored.status == CANCELED and stored.output is None
    [attempt] = await engine.queries.attempts.for_run(run_id)
    assert attempt.status == CANCELED


async def test_a_stale_copy_is_refused_by_the_compare_and_set(tmp_path: Path,
                                                               store: Store) -> None:
    """A copy the row no longer matches (here: a start whose copy is kept while the run moved
    on — as a start whose transaction was never committed leaves) is refused before anything is
    written; the completion reads the row and ends the attempt that is current."""
    engine = await _engine(tmp_path, store)
    run_id = await _started(engine)
    stale = await engine.queries.runs.get(run_id)  # the row as the start left it
    assert stale is not None and stale.status == EXECUTING
    await engine.worker_lost(run_id, 1, "gone", interrupted=True, error_name="")
    [again] = await engine.dequeue(1)
    assert await engine.start_attempt(again, "worker_2", 2) is not None
    current = await engine.queries.runs.get(run_id)
    assert current is not None and current.status == EXECUTING
    assert current.snapshot_id != stale.snapshot_id
    engine.ctx.started[run_id] = stale.copied()  # attempt_count 1: not this attempt's copy
    with pytest.raises(ConflictError):  # attempt 1 is over, read from the row
        await engine.finish_attempt(run_id, 1, DONE)
    stale.attempt_count = current.attempt_count  # the right number, the old snapshot
    engine.ctx.started[run_id] = stale
    done = await engine.finish_attempt(run_id, current.attempt_count, DONE)
    assert done.status == COMPLETED
    attempts = await engine.queries.attempts.for_run(run_id)
    assert [a.status for a in attempts][-1] == COMPLETED
    history = await engine.queries.events.after(0, run_id=run_id)
    assert [e.type for e in history].count("run.completed") == 1


@pytest.mark.parametrize("reserve", [False, True])
async def test_a_run_waitpoint_made_between_the_dequeue_and_the_start_completes(
        tmp_path: Path, store: Store, reserve: bool) -> None:
    """A trigger-and-wait whose idempotency key names a run the dispatcher has taken but not
    started yet gives that run its RUN waitpoint — a write that keeps the snapshot id. The start
    moves the dispatcher's copy, read before it (its compare-and-set holds): the copy the start
    leaves must not be the one the completion trusts, or the waitpoint never completes and the
    waiting parent waits for ever."""
    engine = await _engine(tmp_path, store)
    keyed = TriggerRequest(task_id="noop", idempotency_key="once")
    first = await engine.trigger(keyed)
    [taken] = await engine.dequeue(1, reserve=reserve)
    assert taken.id == first.run.id and taken.waitpoint_id is None
    waited = await engine.trigger(TriggerRequest(task_id="noop", idempotency_key="once"),
                                  wait=True)
    assert waited.cached and waited.run.id == taken.id and waited.waitpoint_id
    assert await engine.start_attempt(taken, "worker_1", 1) is not None
    done = await engine.finish_attempt(taken.id, 1, DONE)
    assert done.status == COMPLETED and done.waitpoint_id == waited.waitpoint_id
    wp = await engine.queries.waitpoints.get(waited.waitpoint_id)
    assert wp is not None and wp.status == WP_COMPLETED and wp.output == '{"a": 1}'
    assert taken.id not in engine.ctx.changed_in_place  # it ended: nothing kept for it


async def test_a_run_waitpoint_made_before_the_dequeue_leaves_the_copy(tmp_path: Path) -> None:
    """A triggerAndWait's child gets its RUN waitpoint before any dequeue reads it: its start
    still leaves the copy its completion moves (no read of the row), and the completion
    completes the waitpoint."""
    engine = await _engine(tmp_path, await _sqlite(tmp_path))
    waited = await engine.trigger(TriggerRequest(task_id="noop"), wait=True)
    assert waited.run.id in engine.ctx.changed_in_place and waited.waitpoint_id
    [taken] = await engine.dequeue(1, reserve=True)
    assert taken.waitpoint_id == waited.waitpoint_id
    assert taken.id not in engine.ctx.changed_in_place
    assert await engine.start_attempt(taken, "worker_1", 1) is not None
    assert engine.ctx.started[taken.id].waitpoint_id == waited.waitpoint_id
    trace = Trace(engine)
    await engine.finish_attempt(taken.id, 1, DONE)
    assert trace.total() and trace.seen["SELECT runs"] == 0
    wp = await engine.queries.waitpoints.get(waited.waitpoint_id)
    assert wp is not None and wp.status == WP_COMPLETED
    assert engine.ctx.started == {} and engine.ctx.changed_in_place == set()


async def _sqlite(tmp_path: Path) -> SqliteStore:
    store = SqliteStore(str(tmp_path / "engine.db"))
    await store.open()
    return store
