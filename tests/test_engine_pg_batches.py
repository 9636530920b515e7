"""Two daemons ending runs of one batch at the same time on PostgreSQL (issue #14): neither
transaction is refused, and the batch completes once its last run ended — its check comes after
the commit that ended a run (engine/endings.py) — or, when a daemon died between that commit and
its check, in another daemon's sweep (`Engine.complete_batches`, peers.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from pg_cluster import Cluster
from store_support import make_run

from tests.engine_support import T0, two_daemons
from tests.test_store_postgres_lists import at_version
from trigger_local.clock import FakeClock
from trigger_local.config import DaemonSettings
from trigger_local.engine import AttemptOutcome, Engine, TriggerRequest, attempts
from trigger_local.ids import attempt_id
from trigger_local.peers import Peers
from trigger_local.store.models import COMPLETED, Attempt, TaskDef
from trigger_local.store.postgres import PostgresStore
from trigger_local.store.postgres.schema import MIGRATIONS

TASKS = [TaskDef(task_id="t", queue="task/t")]


@pytest.fixture
async def engines(pg_cluster: Cluster, tmp_path: Path) -> AsyncIterator[tuple[Engine, Engine]]:
    async with two_daemons(pg_cluster.fresh_url(), tmp_path, FakeClock(T0),
                           tasks=TASKS) as both:
        yield both


async def started_batch(engine: Engine, size: int) -> tuple[str, list[tuple[str, int]]]:
    """A batch of `size` runs, each dequeued and started: (batch id, [(run id, attempt)]).
    Finished runs lie between them in the runs' primary key: PostgreSQL's serializable checks
    see index pages, not rows, and two runs made together share a page, which two daemons'
    transactions would then meet on whatever the batch (a busy database has runs around)."""
    batch, results, _ = await engine.batch_trigger([TriggerRequest(task_id="t")
                                                    for _ in range(size)])
    ids = sorted(r.run.id for r in results)
    for low in ids[:-1]:
        async with engine.store.tx() as ops:
            fillers = [make_run(f"{low}{n:04d}", status=COMPLETED) for n in range(800)]
            await ops.runs.insert_many(fillers)
            for run in fillers:  # and in the attempts' index
                await ops.attempts.insert(Attempt(id=attempt_id(run.id, 1), run_id=run.id,
                                                  number=1, status=COMPLETED, started_at=T0))
    started = []
    for run in await engine.dequeue(size):
        got = await engine.start_attempt(run, "worker_1", None)
        assert got is not None
        started.append((run.id, got[1].number))
    assert len(started) == size
    return batch.id, started


async def test_two_daemons_ending_the_last_runs_of_a_batch_at_once_are_not_refused(
        engines: tuple[Engine, Engine]) -> None:
    first, second = engines
    batch_id, [(run_1, number_1), (run_2, number_2)] = await started_batch(first, 2)
    ok = AttemptOutcome(ok=True)
    # side by side: each daemon's transaction ends one of the two last runs before the other
    # commits (when each also asked whether the batch had unfinished runs, each read the run
    # the other wrote, and PostgreSQL refused the second commit every time)
    async with first._unit() as tx_1:
        await attempts.finish_current(tx_1, run_1, number_1, ok)
        async with second._unit() as tx_2:
            await attempts.finish_current(tx_2, run_2, number_2, ok)
    batch = await first.queries.batches.get(batch_id)
    assert batch is not None and batch.status == COMPLETED


async def test_a_batch_whose_check_was_lost_is_completed_by_the_sweep(
        engines: tuple[Engine, Engine], monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = engines
    batch_id, [(run_1, number_1)] = await started_batch(first, 1)

    async def killed_before_the_check(batch_ids: object = None) -> None:
        return None
    monkeypatch.setattr(first, "complete_batches", killed_before_the_check)
    done = await first.finish_attempt(run_1, number_1, AttemptOutcome(ok=True))
    assert done.status == COMPLETED
    batch = await first.queries.batches.get(batch_id)
    assert batch is not None and batch.status == "PROCESSING"
    # the other daemon's heartbeat round (peers.py)
    peers = Peers(second.store, second, DaemonSettings(home=second.settings.home,
                                                       lease_timeout_s=0.05), T0)
    await peers.round()
    batch = await first.queries.batches.get(batch_id)
    assert batch is not None and batch.status == COMPLETED


async def test_a_round_with_no_batch_to_sweep_opens_no_transaction(
        engines: tuple[Engine, Engine], monkeypatch: pytest.MonkeyPatch) -> None:
    """The sweep looks on the read pool first: nothing to complete costs no write
    transaction (each is a round trip and a COMMIT, every heartbeat round)."""
    first, _ = engines
    batch_id, [(run_1, number_1)] = await started_batch(first, 1)
    await first.finish_attempt(run_1, number_1, AttemptOutcome(ok=True))
    batch = await first.queries.batches.get(batch_id)
    assert batch is not None and batch.status == COMPLETED
    store = first.store
    assert isinstance(store, PostgresStore)
    opened: list[bool] = []
    real_tx = store.tx

    def counting(exclusive: bool = False, starts: bool = False) -> Any:
        opened.append(exclusive)
        return real_tx(exclusive, starts)
    monkeypatch.setattr(store, "tx", counting)
    peers = Peers(store, first, DaemonSettings(home=first.settings.home, lease_timeout_s=0.05),
                  T0)
    await peers.round()
    assert opened == []


@pytest.mark.parametrize("version", range(1, len(MIGRATIONS)))
async def test_a_database_from_an_earlier_version_gets_the_index_of_processing_batches(
        pg_cluster: Cluster, version: int) -> None:
    url = pg_cluster.fresh_url()
    await at_version(url, version)
    store = PostgresStore(url)
    await store.open()  # migrates
    try:
        assert await store.read().batches.ended(10) == []
    finally:
        await store.close()
    conn = await asyncpg.connect(url)
    try:
        assert await conn.fetchval("SELECT to_regclass('batches_processing') IS NOT NULL")
    finally:
        await conn.close()
