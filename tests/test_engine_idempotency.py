"""Run idempotency keys (TRIGGER_API §2.4): which earlier run a key returns, and when it
starts a new one."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.engine_support import T0, open_engine
from trigger_local.clock import FakeClock
from trigger_local.engine import AttemptOutcome, Engine, TriggerRequest
from trigger_local.store import Store
from trigger_local.store.models import (
    CANCELED,
    COMPLETED,
    CRASHED,
    EXPIRED,
    FAILED,
    SYSTEM_FAILURE,
    TIMED_OUT,
    WP_COMPLETED,
    WP_WAITING,
    Run,
    TaskDef,
)


@pytest.fixture
async def engine(tmp_path: Path, clock: FakeClock, store: Store) -> AsyncIterator[Engine]:
    eng = await open_engine(tmp_path, clock, store=store, tasks=[
        TaskDef(task_id="hello", queue="task/hello"), TaskDef(task_id="other", queue="task/other")])
    yield eng
    await eng.store.close()


def keyed(key: str = "key-1", task_id: str = "hello", **options: object) -> TriggerRequest:
    return TriggerRequest(task_id=task_id, idempotency_key=key, **options)  # type: ignore[arg-type]


async def force_status(engine: Engine, run: Run, status: str) -> None:
    """Put a run straight into a final status (the path there is tested elsewhere)."""
    async with engine.store.tx() as ops:
        assert await ops.runs.update(run.id, None, status=status)


async def test_same_key_returns_the_cached_run(engine: Engine) -> None:
    first = await engine.trigger(keyed(idempotency_key_user="my-key"))
    second = await engine.trigger(keyed())
    assert not first.cached and second.cached
    assert second.run.id == first.run.id
    assert first.run.idempotency_key_user == "my-key"
    assert len(await engine.queries.runs.page()) == 1


async def test_keys_are_scoped_to_the_task(engine: Engine) -> None:
    a = await engine.trigger(keyed(task_id="hello"))
    b = await engine.trigger(keyed(task_id="other"))
    assert not b.cached and a.run.id != b.run.id


async def test_duplicate_keys_in_one_batch_create_one_run(engine: Engine) -> None:
    results = await engine.trigger_many([keyed(), keyed()])
    assert [r.cached for r in results] == [False, True]
    assert results[0].run.id == results[1].run.id


@pytest.mark.parametrize("status", [COMPLETED, CANCELED])
async def test_completed_and_canceled_runs_stay_cached(engine: Engine, status: str) -> None:
    first = (await engine.trigger(keyed())).run
    await force_status(engine, first, status)
    again = await engine.trigger(keyed())
    assert again.cached and again.run.id == first.id


@pytest.mark.parametrize("status", [FAILED, CRASHED, SYSTEM_FAILURE, TIMED_OUT, EXPIRED])
async def test_failed_runs_release_their_key(engine: Engine, status: str) -> None:
    first = (await engine.trigger(keyed())).run
    await force_status(engine, first, status)
    again = await engine.trigger(keyed())
    assert not again.cached and again.run.id != first.id
    old = await engine.queries.runs.get(first.id)
    assert old is not None and old.idempotency_key is None
    # the key now points at the new run
    assert (await engine.trigger(keyed())).run.id == again.run.id


async def test_key_ttl(engine: Engine, clock: FakeClock) -> None:
    first = (await engine.trigger(keyed(idempotency_key_ttl="1m"))).run
    assert first.idempotency_expires_at == T0 + 60
    clock.advance(59)
    assert (await engine.trigger(keyed())).cached
    clock.advance(1)
    again = await engine.trigger(keyed())
    assert not again.cached and again.run.id != first.id


async def test_default_key_ttl_is_30_days(engine: Engine) -> None:
    run = (await engine.trigger(keyed())).run
    assert run.idempotency_expires_at == T0 + 30 * 86400
    plain = (await engine.trigger(TriggerRequest(task_id="hello"))).run
    assert plain.idempotency_expires_at is None


async def test_cached_trigger_and_wait_shares_the_run_waitpoint(engine: Engine) -> None:
    first = await engine.trigger(keyed(), wait=True)
    second = await engine.trigger(keyed(), wait=True)
    assert second.cached and first.waitpoint_id is not None
    assert second.waitpoint_id == first.waitpoint_id


async def test_waiting_on_a_cached_finished_run_completes_at_once(engine: Engine) -> None:
    run = (await engine.trigger(keyed(), wait=False)).run
    [dequeued] = await engine.dequeue(1)
    started = await engine.start_attempt(dequeued, "worker_1", None)
    assert started is not None
    await engine.finish_attempt(run.id, 1, AttemptOutcome(ok=True, output='"done"'))
    cached = await engine.trigger(keyed(), wait=True)
    assert cached.cached and cached.waitpoint_id is not None
    wp = await engine.queries.waitpoints.get(cached.waitpoint_id)
    assert wp is not None and wp.status == WP_COMPLETED and wp.output == '"done"'
    # a new run's waitpoint starts out waiting
    fresh = await engine.trigger(TriggerRequest(task_id="hello"), wait=True)
    assert fresh.waitpoint_id is not None
    fresh_wp = await engine.queries.waitpoints.get(fresh.waitpoint_id)
    assert fresh_wp is not None and fresh_wp.status == WP_WAITING


async def test_token_keys(engine: Engine, clock: FakeClock) -> None:
    token, cached = await engine.create_token(idempotency_key="approve", idempotency_key_ttl="10s")
    again, cached_again = await engine.create_token(idempotency_key="approve")
    assert (cached, cached_again) == (False, True) and again.id == token.id
    clock.advance(10)
    fresh, cached_fresh = await engine.create_token(idempotency_key="approve")
    assert not cached_fresh and fresh.id != token.id


async def test_batch_keys(engine: Engine) -> None:
    batch, cached = await engine.create_batch(2, idempotency_key="b")
    again, cached_again = await engine.create_batch(2, idempotency_key="b")
    assert (cached, cached_again) == (False, True) and again.id == batch.id
