"""Attempts and retries: backoff, max_attempts, non-retryable failures, and lost workers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.engine_support import T0, open_engine
from trigger_local.clock import FakeClock
from trigger_local.engine import AttemptOutcome, Engine, TriggerRequest
from trigger_local.engine.retry import RetryPolicy
from trigger_local.errors import ConflictError, NotFoundError
from trigger_local.store import Store
from trigger_local.store.models import (
    COMPLETED,
    CRASHED,
    DELAYED,
    EXECUTING,
    FAILED,
    QUEUED,
    Attempt,
    ProjectDefaults,
    Run,
    TaskDef,
    Version,
)

RETRY = {"max_attempts": 4, "factor": 2, "min_timeout_s": 1, "max_timeout_s": 3, "randomize": False}


@pytest.fixture
async def engine(tmp_path: Path, clock: FakeClock, store: Store) -> AsyncIterator[Engine]:
    eng = await open_engine(tmp_path, clock, store=store, tasks=[
        TaskDef(task_id="retrying", queue="task/retrying", retry=RETRY),
        TaskDef(task_id="once", queue="task/once"),
    ])
    yield eng
    await eng.store.close()


async def start(engine: Engine, run_id: str) -> tuple[Run, Attempt]:
    runs = {r.id: r for r in await engine.dequeue(10)}
    started = await engine.start_attempt(runs[run_id], "worker_1", 4321)
    assert started is not None
    return started


async def new_run(engine: Engine, task_id: str = "retrying", **options: object) -> Run:
    return (await engine.trigger(TriggerRequest(task_id=task_id, **options))).run  # type: ignore[arg-type]


def fail(message: str = "boom", **kw: object) -> AttemptOutcome:
    return AttemptOutcome(ok=False, error={"name": "Error", "message": message}, **kw)  # type: ignore[arg-type]


class TestRetryPolicy:
    def test_backoff_grows_by_factor_between_bounds(self) -> None:
        policy = RetryPolicy.from_dict(RETRY)
        assert [policy.delay_s(n) for n in (1, 2, 3, 4)] == [1, 2, 3, 3]
        flat = RetryPolicy.from_dict({"min_timeout_s": 5, "factor": 1, "randomize": False})
        assert flat.delay_s(9) == 5

    def test_jitter_stays_within_one_to_two_times_the_base(self) -> None:
        import random

        policy = RetryPolicy(min_timeout_s=2, max_timeout_s=100, randomize=True)
        rng = random.Random(7)
        delays = [policy.delay_s(2, rng) for _ in range(50)]
        assert all(4 <= d <= 8 for d in delays) and len(set(delays)) > 1

    def test_defaults_and_overrides(self) -> None:
        # the documented default (docs/configuration.md)
        assert RetryPolicy.from_dict(None).max_attempts == 3
        assert RetryPolicy.from_dict(RETRY, max_attempts=2).max_attempts == 2
        assert RetryPolicy.from_dict({"factor": None}).factor == 2.0


class TestAttempts:
    async def test_success_completes_the_run(self, engine: Engine, clock: FakeClock) -> None:
        run = await new_run(engine)
        await start(engine, run.id)
        clock.advance(3)
        done = await engine.finish_attempt(run.id, 1, AttemptOutcome(ok=True, output='{"ok":1}'))
        assert (done.status, done.output, done.completed_at, done.worker_id) \
            == (COMPLETED, '{"ok":1}', T0 + 3, None)
        [attempt] = await engine.queries.attempts.for_run(run.id)
        assert (attempt.status, attempt.finished_at) == (COMPLETED, T0 + 3)

    async def test_failures_retry_with_backoff_until_max_attempts(self, engine: Engine,
                                                                  clock: FakeClock) -> None:
        run = await new_run(engine)
        expected_delays = [1, 2, 3]
        for number, delay in enumerate(expected_delays, start=1):
            await start(engine, run.id)
            retried = await engine.finish_attempt(run.id, number, fail(f"try {number}"))
            assert (retried.status, retried.snapshot_kind) == (DELAYED, "delayed_retry")
            assert retried.delay_until == clock.now() + delay
            assert retried.error == {"name": "Error", "message": f"try {number}"}
            clock.advance(delay - 0.5)
            assert await engine.tick_timers() == 0
            clock.advance(0.5)
            assert await engine.tick_timers() == 1
            assert (await engine.queries.runs.get(run.id)).status \
                == QUEUED  # type: ignore[union-attr]
        await start(engine, run.id)
        final = await engine.finish_attempt(run.id, 4, fail("last"))
        assert final.status == FAILED and final.error == {"name": "Error", "message": "last"}
        attempts = await engine.queries.attempts.for_run(run.id)
        assert [(a.number, a.status) for a in attempts] == [(n, FAILED) for n in (1, 2, 3, 4)]
        events = [e.type for e in await engine.queries.events.after(0, run_id=run.id)]
        assert events.count("run.retrying") == 3 and events[-1] == "run.failed"

    async def test_run_max_attempts_overrides_the_task(self, engine: Engine) -> None:
        run = await new_run(engine, max_attempts=1)
        await start(engine, run.id)
        assert (await engine.finish_attempt(run.id, 1, fail())).status == FAILED

    async def test_without_a_retry_policy_the_default_gives_three_attempts(
            self, engine: Engine, clock: FakeClock) -> None:
        run = await new_run(engine, task_id="once")
        policy = await engine.retry_policy(run)
        assert (policy.max_attempts, policy.factor, policy.min_timeout_s, policy.max_timeout_s,
                policy.randomize,
                policy.source) == (3, 2.0, 1.0, 60.0, True, "default")
        for number in (1, 2):
            await start(engine, run.id)
            assert (await engine.finish_attempt(run.id, number, fail())).status == DELAYED
            clock.advance(120)
            await engine.tick_timers()
        await start(engine, run.id)
        assert (await engine.finish_attempt(run.id, 3, fail())).status == FAILED

    async def test_abort_is_not_retried(self, engine: Engine) -> None:
        """The runtime reports AbortTaskRunError as retryable=False."""
        run = await new_run(engine)
        await start(engine, run.id)
        outcome = fail("aborted", retryable=False)
        assert (await engine.finish_attempt(run.id, 1, outcome)).status == FAILED

    async def test_a_stale_attempt_is_refused(self, engine: Engine) -> None:
        run = await new_run(engine)
        await start(engine, run.id)
        with pytest.raises(ConflictError):
            await engine.finish_attempt(run.id, 2, AttemptOutcome(ok=True))
        await engine.finish_attempt(run.id, 1, AttemptOutcome(ok=True))
        with pytest.raises(ConflictError):  # the run already ended
            await engine.finish_attempt(run.id, 1, AttemptOutcome(ok=True))
        with pytest.raises(NotFoundError):
            await engine.finish_attempt("run_missing", 1, AttemptOutcome(ok=True))


class TestWorkerLost:
    async def test_a_crash_is_retried_per_policy(self, engine: Engine) -> None:
        run = await new_run(engine)
        await start(engine, run.id)
        lost = await engine.worker_lost(run.id, 1, "exit code -9")
        assert lost is not None and lost.status == DELAYED
        [attempt] = await engine.queries.attempts.for_run(run.id)
        assert (attempt.status, attempt.counts) == (CRASHED, True)
        assert attempt.error == {"name": "TaskProcessExited", "message": "exit code -9"}

    async def test_a_crash_with_no_attempts_left_crashes_the_run(self, engine: Engine) -> None:
        run = await new_run(engine, task_id="once", max_attempts=1)
        await start(engine, run.id)
        lost = await engine.worker_lost(run.id, 1, "segfault")
        assert lost is not None and lost.status == CRASHED

    async def test_interrupted_requeues_without_using_an_attempt(self, engine: Engine,
                                                                 clock: FakeClock) -> None:
        run = await new_run(engine, task_id="once", max_attempts=1)  # one attempt only
        await start(engine, run.id)
        lost = await engine.worker_lost(run.id, 1, "daemon shutdown", interrupted=True)
        assert lost is not None and (lost.status, lost.worker_id) == (QUEUED, None)
        [attempt] = await engine.queries.attempts.for_run(run.id)
        assert (attempt.status, attempt.counts) == ("INTERRUPTED", False)
        _, second = await start(engine, run.id)
        assert second.number == 2
        # the interrupted attempt did not count: this failure is the first and the last
        assert (await engine.finish_attempt(run.id, 2, fail())).status == FAILED
        run2 = await new_run(engine)
        await start(engine, run2.id)
        await engine.worker_lost(run2.id, 1, "restart", interrupted=True)
        await start(engine, run2.id)
        retried = await engine.finish_attempt(run2.id, 2, fail())
        # backoff of attempt 1
        assert retried.status == DELAYED and retried.delay_until == clock.now() + 1

    async def test_a_late_report_for_an_old_attempt_changes_nothing(self, engine: Engine) -> None:
        run = await new_run(engine)
        await start(engine, run.id)
        await engine.finish_attempt(run.id, 1, AttemptOutcome(ok=True))
        lost = await engine.worker_lost(run.id, 1, "exited after completing")
        assert lost is not None and lost.status == COMPLETED
        assert await engine.worker_lost("run_missing", 1, "gone") is None

    async def test_interrupted_while_dequeued(self, engine: Engine) -> None:
        run = await new_run(engine)
        await engine.dequeue(1)
        lost = await engine.worker_lost(run.id, 0, "never started", interrupted=True)
        assert lost is not None and lost.status == QUEUED
        assert await engine.queries.attempts.for_run(run.id) == []
        assert (await start(engine, run.id))[0].status == EXECUTING


class TestPolicyResolution:
    """task's own retry → its version's project [retry] → the built-in default; the policy of
    a run comes from the version it runs on, also once a newer version is current."""

    async def _register(self, engine: Engine, version_id: str,
                        retry: dict[str, object] | None) -> None:
        await engine.register_version(Version(
            id=version_id, project_dir="/proj", created_at=T0,
            defaults=ProjectDefaults(retry=retry),
            tasks=[TaskDef(task_id="retrying", queue="task/retrying", retry=RETRY),
                   TaskDef(task_id="once", queue="task/once")]))

    async def test_the_project_retry_applies_to_tasks_without_their_own(self,
                                                                        engine: Engine) -> None:
        await self._register(engine, "version_2", {"max_attempts": 5, "min_timeout_s": 2})
        run = await new_run(engine, task_id="once")
        await start(engine, run.id)
        policy = await engine.retry_policy(await engine.queries.runs.get(run.id))  # type: ignore[arg-type]
        assert (policy.max_attempts, policy.min_timeout_s, policy.max_timeout_s, policy.source) \
            == (5, 2, 60, "project")
        own = await new_run(engine)
        assert (await engine.retry_policy(own)).source == "task"
        assert (await engine.retry_policy(own)).max_attempts == 4

    async def test_a_run_keeps_the_policy_of_its_own_version(self, engine: Engine) -> None:
        await self._register(engine, "version_2", {"max_attempts": 2, "randomize": False})
        run = await new_run(engine, task_id="once")
        await start(engine, run.id)  # locked to version_2
        await self._register(engine, "version_3", {"max_attempts": 7})
        engine.ctx.versions.clear()  # read from the store, as after a restart
        locked = await engine.queries.runs.get(run.id)
        assert locked is not None and locked.version_id == "version_2"
        assert (await engine.retry_policy(locked)).max_attempts == 2
        assert (await engine.finish_attempt(run.id, 1, fail())).status == DELAYED
        assert (await engine.retry_policy(await new_run(engine, task_id="once"))).max_attempts == 7

    async def test_the_trigger_max_attempts_overrides_every_policy(self, engine: Engine) -> None:
        await self._register(engine, "version_2", {"max_attempts": 5})
        run = await new_run(engine, task_id="once", max_attempts=9)
        policy = await engine.retry_policy(run)
        assert (policy.max_attempts, policy.source, policy.max_attempts_source) \
            == (9, "project", "trigger")
        assert policy.to_json()["maxAttempts"] == 9

    async def test_a_run_not_yet_started_takes_its_own_projects_defaults(self,
                                                                         engine: Engine) -> None:
        """Before a run is locked to a version, its policy and its machine come from its own
        project's current version, not from the newest version of any project."""
        for ref, created, retry, machine in (("proj_a", T0 + 1, {"max_attempts": 5}, "large-1x"),
                                             ("proj_b", T0 + 2, {"max_attempts": 2}, "micro")):
            await engine.register_version(Version(
                id=f"version_{ref}", project_dir=f"/{ref}", created_at=created, project=ref,
                defaults=ProjectDefaults(retry=retry, machine=machine),
                tasks=[TaskDef(task_id="once", queue="task/once")]))
        assert engine.current_version is not None and engine.current_version.project == "proj_b"
        run = await new_run(engine, task_id="once", project="proj_a")
        assert run.version_id is None and run.project == "proj_a" and run.machine == "large-1x"
        policy = await engine.retry_policy(run)
        assert (policy.max_attempts, policy.source) == (5, "project")
