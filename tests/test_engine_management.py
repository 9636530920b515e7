"""Cancel, replay, reschedule, metadata and system failures."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.engine_support import (
    T0,
    get,
    open_engine,
    seen_events,  # noqa: F401 (the hub_events fixture)
    start,
    trigger,
)
from trigger_local.clock import FakeClock
from trigger_local.engine import AttemptOutcome, Engine, TriggerRequest
from trigger_local.engine.events import AttemptAborted, Event
from trigger_local.errors import ConflictError, NotFoundError, ValidationError
from trigger_local.store import Store
from trigger_local.store.models import (
    CANCELED,
    COMPLETED,
    DELAYED,
    EXECUTING,
    QUEUED,
    SYSTEM_FAILURE,
    WAITING,
    TaskDef,
)


@pytest.fixture
async def engine(tmp_path: Path, clock: FakeClock, store: Store) -> AsyncIterator[Engine]:
    eng = await open_engine(tmp_path, clock, store=store, concurrency=1, tasks=[
        TaskDef(task_id="hello", queue="task/hello")])
    yield eng
    await eng.store.close()


class TestCancel:
    @pytest.mark.parametrize("options", [{}, {"delay": "1h"}])
    async def test_cancel_a_run_that_has_not_started(self, engine: Engine, options: dict[str, Any],
                                                     hub_events: list[Event]) -> None:
        run = await trigger(engine, **options)
        canceled = await engine.cancel(run.id)
        assert (canceled.status, canceled.completed_at) == (CANCELED, T0)
        assert canceled.error == {"name": "Canceled", "message": "canceled by request"}
        assert not any(isinstance(e, AttemptAborted) for e in hub_events)

    async def test_cancel_an_executing_run_kills_its_worker(
            self, engine: Engine, hub_events: list[Event]) -> None:
        run = await trigger(engine)
        await start(engine, run.id)
        await engine.cancel(run.id)
        [attempt] = await engine.queries.attempts.for_run(run.id)
        assert attempt.status == CANCELED
        assert AttemptAborted(run_id=run.id, worker_id="worker_1",
                              reason="canceled by request") in hub_events
        with pytest.raises(ConflictError):  # the worker's late report is refused
            await engine.finish_attempt(run.id, 1, AttemptOutcome(ok=True))
        assert (await get(engine, run.id)).status == CANCELED

    async def test_cancel_while_waiting_releases_the_run(self, engine: Engine,
                                                         clock: FakeClock) -> None:
        run = await trigger(engine)
        await start(engine, run.id)
        token, _ = await engine.create_token()
        await engine.wait(run.id, 1, kind="token", waitpoint_id=token.id)
        assert (await get(engine, run.id)).status == WAITING
        await engine.cancel(run.id)
        assert await engine.queries.waitpoints.blocking(run.id) == []
        await engine.complete_token(token.id, None)  # nothing left to resume
        assert (await get(engine, run.id)).status == CANCELED
        result = await engine.wait_result(run.id, token.id)
        assert result is not None and result["final"] is True and result["status"] == CANCELED

    async def test_cancel_is_a_no_op_on_a_finished_run(self, engine: Engine) -> None:
        run = await trigger(engine)
        await start(engine, run.id)
        await engine.finish_attempt(run.id, 1, AttemptOutcome(ok=True))
        assert (await engine.cancel(run.id)).status == COMPLETED
        with pytest.raises(NotFoundError):
            await engine.cancel("run_missing")

    async def test_cancel_completes_the_run_waitpoint_with_an_error(self, engine: Engine) -> None:
        result = await engine.trigger(TriggerRequest(task_id="hello"), wait=True)
        await engine.cancel(result.run.id)
        assert result.waitpoint_id is not None
        wp = await engine.queries.waitpoints.get(result.waitpoint_id)
        assert wp is not None and wp.output_is_error
        assert '"status": "CANCELED"' in (wp.output or "")


async def test_replay_creates_a_new_run_with_the_same_input(engine: Engine) -> None:
    run = await trigger(engine, payload='{"x":1}', tags=["a"], metadata={"m": 1},
                        concurrency_key="k",
                        idempotency_key="once", max_attempts=2)
    replayed = await engine.replay(run.id)
    assert replayed.id != run.id and replayed.status == QUEUED
    assert (replayed.payload, replayed.tags, replayed.metadata) == ('{"x":1}', ["a"], {"m": 1})
    assert (replayed.concurrency_key, replayed.max_attempts) == ("k", 2)
    assert replayed.idempotency_key is None
    with pytest.raises(NotFoundError):
        await engine.replay("run_missing")


class TestReschedule:
    async def test_reschedule_moves_the_delay(self, engine: Engine, clock: FakeClock) -> None:
        run = await trigger(engine, delay="1h", ttl="10m")
        clock.advance(60)
        moved = await engine.reschedule(run.id, "10s")
        assert (moved.status, moved.delay_until) == (DELAYED, T0 + 70)
        assert moved.expires_at == T0 + 70 + 600  # the ttl still starts when the delay ends
        events = [e.type for e in await engine.queries.events.after(0, run_id=run.id)]
        assert events[-1] == "run.rescheduled"
        clock.advance(10)
        await engine.tick_timers()
        assert (await get(engine, run.id)).status == QUEUED

    async def test_only_delayed_runs_can_be_rescheduled(self, engine: Engine) -> None:
        run = await trigger(engine)
        with pytest.raises(ValidationError, match="not DELAYED"):
            await engine.reschedule(run.id, "10s")
        with pytest.raises(NotFoundError):
            await engine.reschedule("run_missing", "10s")
        delayed = await trigger(engine, delay="1h")
        with pytest.raises(ValidationError):
            await engine.reschedule(delayed.id, "whenever")


async def test_update_metadata(engine: Engine) -> None:
    run = await trigger(engine, metadata={"count": 1, "keep": True})
    value = await engine.update_metadata(run.id, None,
                                         [{"type": "increment", "key": "count", "value": 2},
                                          {"type": "append", "key": "log", "value": "a"}])
    assert value == {"count": 3, "keep": True, "log": ["a"]}
    assert (await get(engine, run.id)).metadata == value
    assert await engine.update_metadata(run.id, {"fresh": 1}) == {"fresh": 1}
    with pytest.raises(ValidationError):
        await engine.update_metadata(run.id, {"big": "x" * engine.settings.payload_limit_bytes})
    with pytest.raises(NotFoundError):
        await engine.update_metadata("run_missing", {})


async def test_system_failure_ends_a_live_run_only(engine: Engine) -> None:
    run = await trigger(engine)
    running = await start(engine, run.id)
    assert running.status == EXECUTING
    await engine.system_failure(running, "executor vanished")
    failed = await get(engine, run.id)
    assert failed.status == SYSTEM_FAILURE and failed.error \
        == {"name": "SystemFailure", "message": "executor vanished"}
    await engine.system_failure(failed, "again")  # a final run is left alone
    assert (await get(engine, run.id)).error == failed.error
