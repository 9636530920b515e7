"""Creating runs: options, validation, queues, PENDING_VERSION and version registration."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.engine_support import snapshots_of
from trigger_local.clock import FakeClock
from trigger_local.config import DaemonSettings
from trigger_local.dispatch.dispatcher import wakes
from trigger_local.engine import Engine, TriggerRequest
from trigger_local.engine.events import Event, RunCreated
from trigger_local.errors import (
    BadRequestError,
    PayloadTooLargeError,
    TaskNotFoundError,
    ValidationError,
)
from trigger_local.store import Store
from trigger_local.store.models import DELAYED, PENDING_VERSION, QUEUED, TaskDef, Version

T0 = 1_700_000_000.0


def version(version_id: str, *tasks: TaskDef) -> Version:
    return Version(id=version_id, project_dir="/proj", created_at=T0, tasks=list(tasks))


HELLO = TaskDef(task_id="hello", queue="task/hello")
SCHEMA = TaskDef(task_id="typed", queue="task/typed",
                 schema={"type": "object", "required": ["n"],
                         "properties": {"n": {"type": "integer"}}})
LIMITED = TaskDef(task_id="limited", queue="shared", queue_concurrency_limit=2,
                  queue_is_custom=True,
                  max_duration_s=30, machine="small-2x")


@pytest.fixture
async def bare_engine(tmp_path: Path, clock: FakeClock, store: Store) -> AsyncIterator[Engine]:
    yield Engine(store, clock, DaemonSettings(home=tmp_path, payload_limit_bytes=1000))


@pytest.fixture
async def engine(bare_engine: Engine) -> Engine:
    await bare_engine.register_version(version("version_1", HELLO, SCHEMA, LIMITED))
    return bare_engine


class TestTrigger:
    async def test_a_run_is_queued_with_its_options(self, engine: Engine, clock: FakeClock) -> None:
        result = await engine.trigger(TriggerRequest(
            task_id="hello", payload='{"a":1}', tags=["t1", "t2"], metadata={"m": 1},
            machine="micro",
            max_attempts=3, concurrency_key=42, ttl="1m"))  # type: ignore[arg-type]
        run = result.run
        assert not result.cached and result.waitpoint_id is None
        stored = await engine.queries.runs.get(run.id)
        assert stored is not None
        assert (stored.status, stored.snapshot_kind, stored.queue) \
            == (QUEUED, "queued", "task/hello")
        assert (stored.payload, stored.tags, stored.metadata) == ('{"a":1}', ["t1", "t2"], {"m": 1})
        assert (stored.machine, stored.max_attempts, stored.concurrency_key) == ("micro", 3, "42")
        assert stored.expires_at == T0 + 60
        assert stored.queued_at == T0 and stored.depth == 0 and stored.root_run_id is None

    async def test_priority_moves_the_queue_time_back(self, engine: Engine) -> None:
        run = (await engine.trigger(TriggerRequest(task_id="hello", priority=300))).run
        assert run.queued_at == T0 - 300 and run.priority == 300

    async def test_task_defaults_fill_unset_options(self, engine: Engine) -> None:
        run = (await engine.trigger(TriggerRequest(task_id="limited"))).run
        assert (run.queue, run.max_duration_s, run.machine) == ("shared", 30, "small-2x")
        queue = await engine.get_queue("shared")
        assert (queue.type, queue.concurrency_limit) == ("custom", 2)

    async def test_a_custom_queue_is_created_on_trigger(self, engine: Engine) -> None:
        run = (await engine.trigger(TriggerRequest(task_id="hello", queue="emails"))).run
        assert run.queue == "emails"
        queue = await engine.get_queue("emails")
        assert queue.type == "custom" and queue.concurrency_limit is None and queue.queued == 1

    @pytest.mark.parametrize("delay", ["10s", 10, "1970-01-01T00:00:00Z"])
    async def test_delay(self, engine: Engine, delay: object) -> None:
        run = (await engine.trigger(TriggerRequest(task_id="hello", delay=delay))).run
        if delay == "1970-01-01T00:00:00Z":  # a time in the past queues at once
            assert run.status == QUEUED and run.delay_until is None
        else:
            assert run.status == DELAYED and run.delay_until == T0 + 10

    async def test_child_runs_record_their_parent_and_root(self, engine: Engine) -> None:
        root = (await engine.trigger(TriggerRequest(task_id="hello"))).run
        child = (await engine.trigger(TriggerRequest(task_id="hello", parent_run_id=root.id))).run
        of_child = TriggerRequest(task_id="hello", parent_run_id=child.id)
        grandchild = (await engine.trigger(of_child)).run
        assert (child.root_run_id, child.depth) == (root.id, 1)
        assert (grandchild.root_run_id, grandchild.parent_run_id, grandchild.depth) \
            == (root.id, child.id, 2)

    async def test_trigger_many_is_one_transaction(self, engine: Engine) -> None:
        good = TriggerRequest(task_id="hello")
        bad = TriggerRequest(task_id="hello", tags=["x"] * 11)
        with pytest.raises(ValidationError):
            await engine.trigger_many([good, bad])
        assert await engine.queries.runs.page() == []
        results = await engine.trigger_many([good, TriggerRequest(task_id="limited")])
        assert [r.run.task_id for r in results] == ["hello", "limited"]

    async def test_created_event_and_snapshot(self, engine: Engine) -> None:
        seen: list[Event] = []
        engine.hub.subscribe(Event, seen.append)
        run = (await engine.trigger(TriggerRequest(task_id="hello"))).run
        events = await engine.queries.events.after(0, run_id=run.id)
        assert [e.type for e in events] == ["run.created"]
        assert [s["kind"] for s in await snapshots_of(engine, run.id)] == ["queued"]
        created = RunCreated(run_id=run.id, task_id="hello", status=QUEUED, kind="queued",
                             project="proj_local", queue="task/hello", tags=(),
                             snapshot_id=run.snapshot_id, description="created")
        assert created in seen
        assert created.type == "run.created" and created.data() == events[0].data
        assert wakes(created)  # the dispatcher hears of it


class TestValidation:
    @pytest.mark.parametrize("req", [
        TriggerRequest(task_id=""),
        TriggerRequest(task_id="x" * 129),
        TriggerRequest(task_id="hello", tags=[f"t{i}" for i in range(11)]),
        TriggerRequest(task_id="hello", tags=[""]),
        TriggerRequest(task_id="hello", tags=["x" * 129]),
        TriggerRequest(task_id="hello", priority=-1),
        TriggerRequest(task_id="hello", priority=31 * 86400),
        TriggerRequest(task_id="hello", machine="huge"),
        TriggerRequest(task_id="hello", max_attempts=0),
        TriggerRequest(task_id="hello", max_duration=0.5),
        TriggerRequest(task_id="hello", delay="soon"),
        TriggerRequest(task_id="hello", ttl="-5s"),
        TriggerRequest(task_id="hello", idempotency_key="k", idempotency_key_ttl="forever"),
        TriggerRequest(task_id="hello", metadata=["not", "a", "dict"]),  # type: ignore[arg-type]
    ], ids=lambda r: repr(r)[:60])
    async def test_bad_options_are_refused(self, engine: Engine, req: TriggerRequest) -> None:
        with pytest.raises(ValidationError):
            await engine.trigger(req)
        assert await engine.queries.runs.page() == []

    async def test_payload_over_the_limit(self, engine: Engine) -> None:
        with pytest.raises(PayloadTooLargeError, match="over the payload limit of 1,000 bytes"):
            await engine.trigger(TriggerRequest(task_id="hello", payload=json.dumps("x" * 1000)))
        with pytest.raises(PayloadTooLargeError):
            await engine.trigger(TriggerRequest(task_id="hello", metadata={"m": "x" * 1000}))

    async def test_unknown_task_names_the_known_ones(self, engine: Engine) -> None:
        with pytest.raises(TaskNotFoundError) as info:
            await engine.trigger(TriggerRequest(task_id="nope"))
        assert info.value.details["known_tasks"] == ["hello", "limited", "typed"]

    async def test_payload_schema(self, engine: Engine) -> None:
        await engine.trigger(TriggerRequest(task_id="typed", payload='{"n": 1}'))
        with pytest.raises(ValidationError) as info:
            await engine.trigger(TriggerRequest(task_id="typed", payload='{"n": "one"}'))
        assert info.value.details["issues"][0]["path"] == "n"
        with pytest.raises((BadRequestError, ValidationError), match="not valid JSON"):
            await engine.trigger(TriggerRequest(task_id="typed", payload="{"))


class TestVersions:
    async def test_runs_wait_for_a_version_that_has_their_task(self, bare_engine: Engine) -> None:
        engine = bare_engine
        hello = (await engine.trigger(TriggerRequest(task_id="hello"))).run
        other = (await engine.trigger(TriggerRequest(task_id="other"))).run
        assert hello.status == other.status == PENDING_VERSION
        await engine.register_version(version("version_1", HELLO))
        ops = engine.queries
        released, waiting = await ops.runs.get(hello.id), await ops.runs.get(other.id)
        assert released is not None and released.status == QUEUED
        assert waiting is not None and waiting.status == PENDING_VERSION
        assert engine.current_version is not None and engine.current_version.id == "version_1"
        types = [e.type for e in await ops.events.after(0)]
        assert "run.queued" in types and "version.registered" in types

    async def test_register_version_creates_and_updates_queues(self, engine: Engine) -> None:
        changed = TaskDef(task_id="limited", queue="shared", queue_concurrency_limit=5,
                          queue_is_custom=True)
        await engine.register_version(version("version_2", HELLO, changed))
        assert (await engine.get_queue("shared")).concurrency_limit == 5
        assert (await engine.get_queue("hello")).name == "task/hello"
        loaded = Engine(engine.store, engine.clock, engine.settings)
        await loaded.load()
        assert loaded.current_version is not None and loaded.current_version.id == "version_2"
        assert [t.task_id for t in loaded.current_version.tasks] == ["hello", "limited"]

    async def test_a_run_triggered_before_its_version_goes_to_its_tasks_queue(
            self, bare_engine: Engine) -> None:
        early = (await bare_engine.trigger(TriggerRequest(task_id="limited"))).run
        assert early.status == PENDING_VERSION and early.queue == "task/limited"
        await bare_engine.register_version(version("version_1", LIMITED))
        released = await bare_engine.queries.runs.get(early.id)
        assert released is not None and released.status == QUEUED
        assert released.queue == "shared"  # its task's queue and that queue's limit, not its own
        assert (await bare_engine.get_queue("shared")).concurrency_limit == 2

    async def test_a_version_another_daemon_registered_a_moment_ago_is_found(
            self, bare_engine: Engine) -> None:
        # two engines on one store, as two daemons on one PostgreSQL database: the second has
        # not heard of the first's registrations yet (its notification is on its way)
        other = Engine(bare_engine.store, bare_engine.clock, bare_engine.settings)
        await other.load()
        await bare_engine.register_version(version("version_1", HELLO))
        run = (await other.trigger(TriggerRequest(task_id="hello"))).run
        assert run.status == QUEUED and run.project is not None and run.queue == "task/hello"
        await bare_engine.register_version(version("version_2", HELLO, LIMITED))
        limited = (await other.trigger(TriggerRequest(task_id="limited"))).run
        assert limited.status == QUEUED and limited.queue == "shared"
        with pytest.raises(TaskNotFoundError):
            await other.trigger(TriggerRequest(task_id="nowhere"))
