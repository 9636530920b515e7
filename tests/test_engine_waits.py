"""Waits: durations, tokens, child runs and batches, each as a waitpoint a run is blocked by."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.engine_support import T0, open_engine
from trigger_local.clock import FakeClock
from trigger_local.durations import iso
from trigger_local.engine import AttemptOutcome, Engine, TriggerRequest
from trigger_local.errors import ConflictError, NotFoundError, ValidationError
from trigger_local.store import Store
from trigger_local.store.models import (
    DELAYED,
    EXECUTING,
    QUEUED,
    WAITING,
    WP_COMPLETED,
    WP_TIMED_OUT,
    Run,
    TaskDef,
)


@pytest.fixture
async def engine(tmp_path: Path, clock: FakeClock, store: Store) -> AsyncIterator[Engine]:
    eng = await open_engine(tmp_path, clock, store=store, concurrency=3, tasks=[
        TaskDef(task_id="parent", queue="task/parent",
                retry={"max_attempts": 3, "min_timeout_s": 1, "randomize": False}),
        # a failure is final
        TaskDef(task_id="child", queue="task/child", retry={"max_attempts": 1}),
    ])
    yield eng
    await eng.store.close()


async def executing(engine: Engine, task_id: str = "parent", **options: object) -> Run:
    run = (await engine.trigger(TriggerRequest(task_id=task_id, **options))).run  # type: ignore[arg-type]
    return await start(engine, run.id)


async def start(engine: Engine, run_id: str) -> Run:
    """Dequeue (if not yet dequeued) and start `run_id`; other dequeued runs stay DEQUEUED."""
    await engine.dequeue(10)
    started = await engine.start_attempt(await status(engine, run_id), "worker_1", 100)
    assert started is not None
    return started[0]


async def status(engine: Engine, run_id: str) -> Run:
    run = await engine.queries.runs.get(run_id)
    assert run is not None
    return run


async def resume(engine: Engine, run_id: str, waitpoint_id: str) -> dict[str, object]:
    """What the dispatcher and a held process do once the run is unblocked."""
    queued = await status(engine, run_id)
    assert (queued.status, queued.snapshot_kind) == (QUEUED, "queued_held")
    assert await engine.wait_result(run_id, waitpoint_id) is None  # no slot yet
    [dequeued] = [r for r in await engine.dequeue(10) if r.id == run_id]
    resumed = await engine.resume_held(dequeued)
    assert resumed is not None and resumed.status == EXECUTING
    result = await engine.wait_result(run_id, waitpoint_id)
    assert result is not None
    return result


async def test_duration_wait_holds_then_resumes(engine: Engine, clock: FakeClock) -> None:
    run = await executing(engine)
    decision = await engine.wait(run.id, 1, kind="duration", until="10s")
    assert decision.action == "hold" and decision.result is None
    waiting = await status(engine, run.id)
    assert (waiting.status, waiting.snapshot_kind) == (WAITING, "executing_with_waitpoints")
    assert await engine.queries.timers.next_due_at() == T0 + 10
    assert await engine.wait_result(run.id, decision.waitpoint_id) is None
    clock.advance(9.9)
    assert await engine.tick_timers() == 0
    clock.advance(0.1)
    assert await engine.tick_timers() == 1
    result = await resume(engine, run.id, decision.waitpoint_id)
    assert result["ok"] is True and result["status"] == WP_COMPLETED
    assert await engine.queries.waitpoints.blocking(run.id) == []
    types = [e.type for e in await engine.queries.events.after(0, run_id=run.id)]
    assert types[-2:] == ["run.unblocked", "run.resumed"]  # DEQUEUED is a notice, no row


async def test_waiting_frees_the_concurrency_slot(engine: Engine) -> None:
    run = await executing(engine)
    for _ in range(2):
        await executing(engine, task_id="child")
    await engine.trigger(TriggerRequest(task_id="child"))
    assert await engine.dequeue(10) == []
    await engine.wait(run.id, 1, kind="duration", until="1h")
    assert len(await engine.dequeue(10)) == 1


async def test_a_wait_already_over_continues(engine: Engine) -> None:
    run = await executing(engine)
    decision = await engine.wait(run.id, 1, kind="duration", until=0)
    assert decision.action == "continue" and decision.result is not None and decision.result["ok"]
    assert (await status(engine, run.id)).status == EXECUTING


async def test_idempotent_duration_wait_on_a_retried_attempt_continues(engine: Engine,
                                                                       clock: FakeClock) -> None:
    run = await executing(engine)
    first = await engine.wait(run.id, 1, kind="duration", until="5s", idempotency_key="step-1")
    clock.advance(5)
    await engine.tick_timers()
    await resume(engine, run.id, first.waitpoint_id)
    retried = await engine.finish_attempt(run.id, 1,
                                          AttemptOutcome(ok=False, error={"message": "x"}))
    assert retried.status == DELAYED
    clock.advance(1)
    await engine.tick_timers()
    await start(engine, run.id)
    again = await engine.wait(run.id, 2, kind="duration", until="5s", idempotency_key="step-1")
    assert (again.action, again.waitpoint_id) == ("continue", first.waitpoint_id)
    # a different key, or another run with the same key, waits afresh
    other = await engine.wait(run.id, 2, kind="duration", until="5s", idempotency_key="step-2")
    assert other.action == "hold"


async def test_wait_needs_the_current_attempt_of_a_live_run(engine: Engine) -> None:
    run = await executing(engine)
    with pytest.raises(ConflictError):
        await engine.wait(run.id, 2, kind="duration", until="1s")
    with pytest.raises(ValidationError):
        await engine.wait(run.id, 1, kind="forever")
    with pytest.raises(ValidationError):
        await engine.wait(run.id, 1, kind="token")
    with pytest.raises(NotFoundError):
        await engine.wait(run.id, 1, kind="token", waitpoint_id="waitpoint_missing")
    await engine.wait(run.id, 1, kind="duration", until="1s")
    with pytest.raises(ConflictError):  # already waiting
        await engine.wait(run.id, 1, kind="duration", until="1s")


class TestTokens:
    async def test_complete_token_resumes_with_its_output(self, engine: Engine) -> None:
        run = await executing(engine)
        token, _ = await engine.create_token(tags=["approval"], created_by_run_id=run.id)
        decision = await engine.wait(run.id, 1, kind="token", waitpoint_id=token.id)
        assert decision.action == "hold"
        done, changed = await engine.complete_token(token.id, '{"approved":true}')
        assert done.status == WP_COMPLETED and changed
        result = await resume(engine, run.id, token.id)
        assert result == {"ok": True, "status": WP_COMPLETED, "output": '{"approved":true}',
                          "outputType": "application/json"}

    async def test_completing_twice_is_harmless(self, engine: Engine) -> None:
        token, _ = await engine.create_token()
        assert (await engine.complete_token(token.id, '"first"'))[1] is True
        again, changed = await engine.complete_token(token.id, '"second"')
        assert again.status == WP_COMPLETED and again.output == '"first"' and changed is False
        assert (await engine.timeout_token(token.id))[1] is False
        stored = await engine.queries.waitpoints.get(token.id)
        assert stored is not None and (stored.status, stored.output) == (WP_COMPLETED, '"first"')
        completed = [e for e in await engine.queries.events.after(0)
                     if e.type == "waitpoint.completed"]
        assert len(completed) == 1

    async def test_waiting_on_a_completed_token_continues(self, engine: Engine) -> None:
        run = await executing(engine)
        token, _ = await engine.create_token()
        await engine.complete_token(token.id, '"ok"')
        decision = await engine.wait(run.id, 1, kind="token", waitpoint_id=token.id)
        assert decision.action == "continue" and decision.result is not None
        assert decision.result["output"] == '"ok"'

    async def test_token_timeout_gives_an_error_result(self, engine: Engine,
                                                       clock: FakeClock) -> None:
        run = await executing(engine)
        token, _ = await engine.create_token(timeout="1m")
        assert token.timeout_at == T0 + 60
        decision = await engine.wait(run.id, 1, kind="token", waitpoint_id=token.id)
        clock.advance(60)
        assert await engine.tick_timers() == 1
        result = await resume(engine, run.id, decision.waitpoint_id)
        assert result["ok"] is False and result["status"] == WP_TIMED_OUT
        assert result["error"] == {"code": "TRIGGER_WAITPOINT_TIMEOUT",  # TRIGGER_API.md §6.4
                                   "message": f"Waitpoint timed out at {iso(T0 + 60)}"}
        # completing after the timeout changes nothing
        late, changed = await engine.complete_token(token.id, '"late"')
        assert late.status == WP_TIMED_OUT and changed is False

    async def test_unknown_tokens(self, engine: Engine) -> None:
        with pytest.raises(NotFoundError):
            await engine.complete_token("waitpoint_missing", None)
        with pytest.raises(ValidationError):
            await engine.create_token(tags=[f"t{i}" for i in range(11)])


class TestChildRuns:
    async def _child_flow(self, engine: Engine, outcome: AttemptOutcome) -> dict[str, object]:
        parent = await executing(engine)
        child = await engine.trigger(TriggerRequest(task_id="child", parent_run_id=parent.id,
                                                    resume_parent=True), wait=True)
        assert child.waitpoint_id is not None
        decision = await engine.wait(parent.id, 1, kind="run", waitpoint_id=child.waitpoint_id)
        assert decision.action == "hold"
        await start(engine, child.run.id)
        await engine.finish_attempt(child.run.id, 1, outcome)
        return await resume(engine, parent.id, child.waitpoint_id)

    async def test_trigger_and_wait_resumes_with_the_child_output(self, engine: Engine) -> None:
        result = await self._child_flow(engine, AttemptOutcome(ok=True, output='{"sum":3}'))
        assert result["ok"] is True and result["output"] == '{"sum":3}'

    async def test_trigger_and_wait_resumes_with_the_child_error(self, engine: Engine) -> None:
        error = {"name": "ValueError", "message": "bad"}
        result = await self._child_flow(engine,
                                        AttemptOutcome(ok=False, error=error, retryable=False))
        assert result["ok"] is False
        assert result["error"] == {**error, "status": "FAILED"}

    async def test_canceling_the_parent_cancels_children_that_resume_it(self,
                                                                        engine: Engine) -> None:
        parent = await executing(engine)
        child = await engine.trigger(TriggerRequest(task_id="child", parent_run_id=parent.id,
                                                    resume_parent=True), wait=True)
        detached = await engine.trigger(TriggerRequest(task_id="child", parent_run_id=parent.id))
        await engine.wait(parent.id, 1, kind="run", waitpoint_id=child.waitpoint_id)
        await engine.cancel(parent.id)
        assert (await status(engine, child.run.id)).status == "CANCELED"
        assert (await status(engine, detached.run.id)).status == QUEUED


async def test_batch_waitpoint_completes_when_every_run_ends(engine: Engine) -> None:
    parent = await executing(engine)
    batch, cached = await engine.create_batch(2, parent_run_id=parent.id, wait=True)
    assert not cached and batch.waitpoint_id is not None
    reqs = [TriggerRequest(task_id="child", parent_run_id=parent.id, batch_id=batch.id,
                           payload=str(i),
                           resume_parent=True) for i in range(2)]
    runs = [r.run for r in await engine.trigger_many(reqs)]
    await engine.add_batch_runs(batch.id, [r.id for r in runs])
    decision = await engine.wait(parent.id, 1, kind="batch", waitpoint_id=batch.waitpoint_id)
    assert decision.action == "hold"
    await start(engine, runs[0].id)
    await start(engine, runs[1].id)
    await engine.finish_attempt(runs[0].id, 1, AttemptOutcome(ok=True, output="10"))
    assert (await status(engine, parent.id)).status == WAITING
    await engine.finish_attempt(runs[1].id, 1, AttemptOutcome(ok=False, error={"message": "no"}))
    result = await resume(engine, parent.id, batch.waitpoint_id)
    items = json.loads(result["output"])  # type: ignore[arg-type]
    assert [(i["id"], i["ok"], i["output"]) for i in items] \
        == [(runs[0].id, True, "10"), (runs[1].id, False, None)]
    stored = await engine.queries.batches.get(batch.id)
    assert stored is not None and stored.status == "COMPLETED"


async def test_a_batch_whose_runs_ended_before_they_were_added_completes(engine: Engine) -> None:
    batch, _ = await engine.create_batch(1, wait=True)
    item = TriggerRequest(task_id="child", batch_id=batch.id)
    [run] = [r.run for r in await engine.trigger_many([item])]
    await start(engine, run.id)
    await engine.finish_attempt(run.id, 1, AttemptOutcome(ok=True, output="1"))
    await engine.add_batch_runs(batch.id, [run.id])
    assert batch.waitpoint_id is not None
    wp = await engine.queries.waitpoints.get(batch.waitpoint_id)
    assert wp is not None and wp.status == WP_COMPLETED
