"""Out-of-memory retries on a bigger machine (Trigger.dev's `retry.outOfMemory.machine`): the
preset rule, the SDK option and its checks, and the engine moving a run's machine on retry."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.engine_support import open_engine
from trigger_local.clock import FakeClock
from trigger_local.engine import AttemptOutcome, Engine, TriggerRequest
from trigger_local.engine.retry import RetryPolicy
from trigger_local.errors import ValidationError
from trigger_local.indexing import tasks_from_manifest
from trigger_local.machines import next_machine, out_of_memory_machine
from trigger_local.sdk import registry
from trigger_local.sdk.registry import task
from trigger_local.sdk.retry import Retry
from trigger_local.store import Store
from trigger_local.store.models import COMPLETED, CRASHED, DELAYED, Run, TaskDef

FAST = {"max_attempts": 3, "min_timeout_s": 1, "factor": 1, "randomize": False}


@pytest.fixture
async def engine(tmp_path: Path, clock: FakeClock, store: Store) -> AsyncIterator[Engine]:
    eng = await open_engine(tmp_path, clock, store=store, tasks=[
        TaskDef(task_id="to-small-2x", queue="task/a", machine="micro",
                retry={**FAST, "out_of_memory": {"machine": "small-2x"}}),
        TaskDef(task_id="ladder", queue="task/b", machine="micro",
                retry={**FAST, "max_attempts": 4, "out_of_memory": {"machine": "next"}}),
        TaskDef(task_id="no-machine", queue="task/c",
                retry={**FAST, "out_of_memory": {"machine": "next"}}),
        TaskDef(task_id="plain", queue="task/d", machine="micro", retry=FAST),
    ])
    yield eng
    await eng.store.close()


async def trigger(engine: Engine, task_id: str, **options: object) -> Run:
    return (await engine.trigger(TriggerRequest(task_id=task_id, **options))).run  # type: ignore[arg-type]


async def run_attempt(engine: Engine, run: Run, clock: FakeClock) -> int:
    """Let a delayed retry become due, dequeue and start it; the attempt number."""
    clock.advance(60)
    await engine.tick_timers()
    [ready] = [r for r in await engine.dequeue(10) if r.id == run.id]
    started = await engine.start_attempt(ready, "worker_1", None, "docker")
    assert started is not None
    return started[1].number


async def oom(engine: Engine, run: Run, attempt: int) -> Run:
    lost = await engine.worker_lost(run.id, attempt, "Out of memory: ...",
                                    error_name="OutOfMemoryError")
    assert lost is not None
    return lost


async def stored(engine: Engine, run_id: str) -> Run:
    run = await engine.queries.runs.get(run_id)
    assert run is not None
    return run


class TestPresetRule:
    def test_next_goes_one_preset_up_and_stops_at_the_top(self) -> None:
        assert out_of_memory_machine("micro", "next") == "small-1x"
        assert out_of_memory_machine(None, "next") == "small-2x"  # None is the default small-1x
        assert out_of_memory_machine("large-2x", "next") is None
        assert next_machine("large-1x") == "large-2x"

    def test_a_named_preset_is_used_only_when_it_is_bigger(self) -> None:
        assert out_of_memory_machine("micro", "medium-1x") == "medium-1x"
        assert out_of_memory_machine("medium-1x", "medium-1x") is None
        assert out_of_memory_machine("large-1x", "small-2x") is None  # never down

    def test_only_out_of_memory_errors_move_the_machine(self) -> None:
        policy = RetryPolicy.from_dict({"out_of_memory": {"machine": "next"}})
        assert policy.retry_machine({"name": "OutOfMemoryError", "message": "x"}, "micro") \
            == "small-1x"
        assert policy.retry_machine({"name": "MemoryError", "message": ""}, "micro") == "small-1x"
        assert policy.retry_machine({"name": "ValueError", "message": "x"}, "micro") is None
        assert RetryPolicy.from_dict(FAST).retry_machine({"name": "OutOfMemoryError"}, "micro") \
            is None
        # Trigger.dev's camelCase shape is read too; a broken stored value is ignored, not fatal
        camel = RetryPolicy.from_dict({"outOfMemory": {"machine": "large-1x"}})
        assert camel.out_of_memory_machine == "large-1x"
        broken = RetryPolicy.from_dict({"out_of_memory": {"machine": "huge"}})
        assert broken.out_of_memory_machine is None


class TestSdkOption:
    def setup_method(self) -> None:
        registry.clear()

    def teardown_method(self) -> None:
        registry.clear()

    def test_retry_carries_out_of_memory_into_the_manifest(self) -> None:
        retry = Retry(max_attempts=3, out_of_memory={"machine": "medium-1x"})
        assert retry.to_dict()["out_of_memory"] == {"machine": "medium-1x"}
        assert Retry.coerce({"out_of_memory": {"machine": "next"}}).to_dict()["out_of_memory"] \
            == {  # type: ignore[union-attr]
            "machine": "next"}
        assert "out_of_memory" not in Retry().to_dict()

    def test_unknown_presets_and_shapes_are_clear_errors(self) -> None:
        with pytest.raises(ValidationError, match="'huge'.*micro, small-1x.*'next'"):
            Retry(out_of_memory={"machine": "huge"})
        with pytest.raises(ValidationError, match=r'must be \{"machine": PRESET\}'):
            Retry(out_of_memory="large-1x")  # type: ignore[arg-type]
        with pytest.raises(ValidationError, match="Task 'bad-retry'.*'xl'"):
            task(id="bad-retry", retry={"out_of_memory": {"machine": "xl"}})(lambda payload: None)
        with pytest.raises(ValidationError, match="machine of task 'bad-machine'"):
            task(id="bad-machine", machine="small-3x")(lambda payload: None)

    def test_a_manifest_with_an_unknown_preset_is_refused_by_the_daemon(self) -> None:
        manifest = {"tasks": [{"id": "t",
                               "retry": {"max_attempts": 2, "out_of_memory": {"machine": "xl"}}}]}
        with pytest.raises(ValidationError, match="retry out_of_memory of task 't'"):
            tasks_from_manifest(manifest)
        with pytest.raises(ValidationError, match="machine of task 't'"):
            tasks_from_manifest({"tasks": [{"id": "t", "machine": "giant"}]})


class TestEngine:
    async def test_an_oom_retry_runs_on_the_policys_machine(self, engine: Engine,
                                                            clock: FakeClock) -> None:
        run = await trigger(engine, "to-small-2x")
        assert run.machine == "micro"
        await run_attempt(engine, run, clock)
        retried = await oom(engine, run, 1)
        assert (retried.status, retried.machine) == (DELAYED, "small-2x")
        # persisted for the executor and API
        assert (await stored(engine, run.id)).machine == "small-2x"
        events = await engine.queries.events.after(0, run_id=run.id)
        [retrying] = [e for e in events if e.type == "run.retrying"]
        assert retrying.data["machine"] == "small-2x" \
            and retrying.data["previous_machine"] == "micro"
        assert await run_attempt(engine, run, clock) == 2
        done = await engine.finish_attempt(run.id, 2, AttemptOutcome(ok=True, output="1"))
        assert (done.status, done.machine) == (COMPLETED, "small-2x")
        first, _ = await engine.queries.attempts.for_run(run.id)
        assert (first.status, first.error["name"]) \
            == (CRASHED, "OutOfMemoryError")  # type: ignore[index]

    async def test_once_on_the_policys_machine_further_ooms_retry_there(self, engine: Engine,
                                                                       clock: FakeClock) -> None:
        run = await trigger(engine, "to-small-2x")
        await run_attempt(engine, run, clock)
        await oom(engine, run, 1)
        await run_attempt(engine, run, clock)
        assert (await oom(engine, run, 2)).machine == "small-2x"
        await run_attempt(engine, run, clock)
        final = await oom(engine, run, 3)  # max_attempts 3: the run ends as out of memory
        assert final.error is not None
        assert (final.status, final.machine, final.error["name"]) \
            == (CRASHED, "small-2x", "OutOfMemoryError")

    async def test_next_climbs_one_preset_per_oom(self, engine: Engine, clock: FakeClock) -> None:
        run = await trigger(engine, "ladder")
        machines = []
        for attempt in (1, 2, 3):
            await run_attempt(engine, run, clock)
            machines.append((await oom(engine, run, attempt)).machine)
        assert machines == ["small-1x", "small-2x", "medium-1x"]

    async def test_the_trigger_options_machine_is_where_the_climb_starts(self, engine: Engine,
                                                                        clock: FakeClock) -> None:
        run = await trigger(engine, "ladder", machine="medium-2x")
        await run_attempt(engine, run, clock)
        assert (await oom(engine, run, 1)).machine == "large-1x"
        default = await trigger(engine, "no-machine")  # no machine anywhere: small-1x
        await run_attempt(engine, default, clock)
        assert (await oom(engine, default, 1)).machine == "small-2x"

    async def test_other_failures_and_tasks_without_the_option_keep_their_machine(
            self, engine: Engine, clock: FakeClock) -> None:
        run = await trigger(engine, "to-small-2x")
        await run_attempt(engine, run, clock)
        failed = await engine.finish_attempt(run.id, 1, AttemptOutcome(
            ok=False, error={"name": "ValueError", "message": "bad input"}))
        assert (failed.status, failed.machine) == (DELAYED, "micro")
        plain = await trigger(engine, "plain")
        await run_attempt(engine, plain, clock)
        assert ((await oom(engine, plain, 1)).status, (await stored(engine, plain.id)).machine) \
            == (DELAYED, "micro")

    async def test_a_memory_error_raised_by_the_task_counts_as_oom(self, engine: Engine,
                                                                   clock: FakeClock) -> None:
        run = await trigger(engine, "to-small-2x")
        await run_attempt(engine, run, clock)
        retried = await engine.finish_attempt(run.id, 1, AttemptOutcome(
            ok=False, error={"name": "MemoryError", "message": ""}))
        assert (retried.status, retried.machine) == (DELAYED, "small-2x")

    async def test_no_attempts_left_means_no_move(self, engine: Engine, clock: FakeClock) -> None:
        run = await trigger(engine, "to-small-2x", max_attempts=1)
        await run_attempt(engine, run, clock)
        final = await oom(engine, run, 1)
        assert (final.status, final.machine) == (CRASHED, "micro")
        assert (await stored(engine, run.id)).machine == "micro"
