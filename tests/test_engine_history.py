"""A run's history is one row per change (issue #13): its event, which names the snapshot the
change made (engine/runs.py); `engine/history.py` reads the snapshots from the events, with
the `snapshots` rows a database written before holds, and shows none from the events a
compacted run kept. Every store (the `store` fixture)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.engine_support import T0, open_engine, snapshots_of
from tests.legacy_rows import insert_snapshot
from trigger_local.clock import FakeClock
from trigger_local.engine import AttemptOutcome, Engine, TriggerRequest, runs
from trigger_local.store import Store
from trigger_local.store.models import COMPLETED, DELAYED, EXECUTING, QUEUED, TaskDef


@pytest.fixture
async def engine(tmp_path: Path, clock: FakeClock, store: Store) -> AsyncIterator[Engine]:
    retry = {"max_attempts": 2, "randomize": False, "min_timeout_ms": 1000}
    eng = await open_engine(tmp_path, clock, store=store,
                            tasks=[TaskDef(task_id="hello", queue="task/hello", retry=retry)])
    yield eng
    await eng.store.close()


async def _retried_then_completed(engine: Engine, clock: FakeClock) -> str:
    run = (await engine.trigger(TriggerRequest(task_id="hello"))).run
    [taken] = await engine.dequeue(1)
    assert await engine.start_attempt(taken, "worker_1", None) is not None
    await engine.finish_attempt(run.id, 1, AttemptOutcome(ok=False, error={"message": "x"}))
    clock.advance(5)
    await engine.tick_timers()
    [again] = await engine.dequeue(1)
    assert await engine.start_attempt(again, "worker_1", None) is not None
    await engine.finish_attempt(run.id, 2, AttemptOutcome(ok=True, output="null"))
    return run.id


async def test_each_change_writes_its_event_alone_and_the_snapshots_read_from_them(
        engine: Engine, clock: FakeClock) -> None:
    run_id = await _retried_then_completed(engine, clock)
    async with engine.store.tx() as ops:  # no snapshot rows: the events say it all
        assert await ops.snapshots.for_run(run_id) == []
    shown = await snapshots_of(engine, run_id)
    assert [s["status"] for s in shown] == [QUEUED, EXECUTING, DELAYED, QUEUED, EXECUTING,
                                            COMPLETED]
    events = [e for e in await engine.queries.events.after(0, run_id=run_id)
              if "snapshot_id" in e.data]
    assert [s["id"] for s in shown] == [e.data["snapshot_id"] for e in events]
    assert [s["at"] for s in shown] == [e.at for e in events]
    assert shown[0]["description"] == "created"
    assert shown[2]["description"].startswith("attempt 1 failed; retry in")
    run = await engine.queries.runs.get(run_id)
    assert run is not None and shown[-1]["id"] == run.snapshot_id
    assert set(shown[0]) == {"id", "run_id", "kind", "status", "at", "description"}


async def test_snapshot_rows_of_a_database_written_before_come_first(
        engine: Engine, clock: FakeClock) -> None:
    """A run created by an older daemon has a `snapshots` row for its creation and a
    `run.created` event that names none; the changes made since are named by their events."""
    run = (await engine.trigger(TriggerRequest(task_id="hello"))).run
    async with engine.store.tx() as ops:  # as the older daemon wrote it
        await insert_snapshot(ops, "snapshot_old", run.id, "queued", QUEUED, T0 - 1, "created")
    clock.advance(1)
    async with engine._unit() as tx:
        stored = await tx.runs.get(run.id)
        assert stored is not None
        await runs.move(tx, stored, "CANCELED", description="canceled by hand")
    shown = await snapshots_of(engine, run.id)
    assert [(s["id"], s["status"], s["description"]) for s in shown][0] \
        == ("snapshot_old", QUEUED, "created")
    assert [(s["status"], s["description"]) for s in shown][-1] \
        == ("CANCELED", "canceled by hand")


async def test_a_compacted_run_shows_no_snapshot_of_the_events_it_kept(
        engine: Engine, clock: FakeClock) -> None:
    """Compaction keeps `run.retrying` (it says more than a status) and deletes the plain
    status events: the run shows no snapshot, as a compacted run did (the row says where it
    ended: api/traces.py)."""
    run_id = await _retried_then_completed(engine, clock)
    clock.advance(engine.ctx.settings.compact_after_s + 1)
    assert await engine.prune(100) == (1, [])
    kept = [e.type for e in await engine.queries.events.after(0, run_id=run_id)]
    assert "run.retrying" in kept and "run.completed" not in kept
    assert await snapshots_of(engine, run_id) == []
