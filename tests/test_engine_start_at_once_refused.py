"""A PostgreSQL trigger that starts its run at once reserves it in memory (dequeue(reserve=True));
a refusal after the reservation and before attempts.start must let the reservation go with the
transaction (review rv8b: it stayed, and held the queue's one slot for good)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pg_cluster import Cluster

from tests.engine_support import T0, open_engine
from tests.test_engine_pg_start_at_once import Places
from trigger_local.clock import FakeClock
from trigger_local.engine import AttemptOutcome, Engine, TriggerRequest
from trigger_local.errors import TransactionRetryError
from trigger_local.store.models import EXECUTING, TaskDef
from trigger_local.store.postgres import PostgresStore

TASKS = [TaskDef(task_id="rated", queue="task/rated", queue_concurrency_limit=1, shared=True,
                 rate_limit={"limit": 100, "period_s": 60})]


@pytest.fixture
async def engine(pg_cluster: Cluster, tmp_path: Path) -> AsyncIterator[Engine]:
    store = PostgresStore(pg_cluster.fresh_url(), daemon_id="daemon_a")
    await store.open()
    eng = await open_engine(tmp_path, FakeClock(T0), store=store, tasks=TASKS)
    eng.ctx.placer = Places("a")
    yield eng
    await store.close()


async def test_a_refused_trigger_leaves_no_reservation(engine: Engine,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    area = type(engine.store.tx.__self__._write_view.rate_limits)  # type: ignore[attr-defined]
    real = area.save_state
    refused = []

    async def once(self: Any, *args: Any) -> None:
        if not refused:  # as PostgreSQL's "could not serialize access" on rate_state
            refused.append(1)
            raise TransactionRetryError("refused")
        await real(self, *args)
    monkeypatch.setattr(area, "save_state", once)
    await engine.trigger(TriggerRequest(task_id="rated"))
    assert refused
    assert engine.ctx.reserved == {}, "a reservation outlived its transaction"


async def test_then_the_queue_is_stuck(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    area = type(engine.store.tx.__self__._write_view.rate_limits)  # type: ignore[attr-defined]
    real = area.save_state
    refused = []

    async def once(self: Any, *args: Any) -> None:
        if not refused:
            refused.append(1)
            raise TransactionRetryError("refused")
        await real(self, *args)
    monkeypatch.setattr(area, "save_state", once)
    first = (await engine.trigger(TriggerRequest(task_id="rated"))).run
    if first.status == EXECUTING:
        await engine.finish_attempt(first.id, 1, AttemptOutcome(ok=True))
    engine.ctx.placer = None
    second = (await engine.trigger(TriggerRequest(task_id="rated"))).run
    taken = await engine.dequeue(5)
    assert [r.id for r in taken] == [second.id], "the queue's one slot is held by a phantom"
