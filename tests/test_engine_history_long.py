"""A run with more than EVENTS_READ events (metadata updates, log bursts) keeps its
snapshots: history.snapshots reads past the first 10,000 events (review rv8c)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.engine_support import open_engine, snapshots_of
from trigger_local.clock import FakeClock
from trigger_local.engine import AttemptOutcome, Engine, TriggerRequest
from trigger_local.store.models import COMPLETED, EXECUTING, QUEUED, TaskDef


@pytest.fixture
async def engine(tmp_path: Path, clock: FakeClock) -> AsyncIterator[Engine]:
    eng = await open_engine(tmp_path, clock, tasks=[TaskDef(task_id="hello", queue="task/hello")])
    yield eng
    await eng.store.close()


async def test_a_run_with_many_events_keeps_its_snapshots(engine: Engine,
                                                          clock: FakeClock) -> None:
    run = (await engine.trigger(TriggerRequest(task_id="hello"))).run
    [taken] = await engine.dequeue(1)
    assert await engine.start_attempt(taken, "worker_1", None) is not None
    clock.advance(1)
    # what 10,000 metadata updates / log bursts of a long run write (one event each)
    async with engine.store.tx() as ops:
        for _ in range(10_000):
            await ops.events.append(run.id, "run.metadata", clock.now(), {"run_id": run.id})
    clock.advance(1)
    await engine.finish_attempt(run.id, 1, AttemptOutcome(ok=True, output="null"))
    shown = await snapshots_of(engine, run.id)
    assert [s["status"] for s in shown] == [QUEUED, EXECUTING, COMPLETED]
