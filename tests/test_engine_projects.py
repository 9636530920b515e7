"""One engine, several projects (issue #11): each has its own current version, task ids resolve
within a project, a project registered by dev runs only while a dev session is open, and
schedules, rate limits, debounce and idempotency keys stay in their project."""

from __future__ import annotations

import asyncio

import pytest

from trigger_local.clock import FakeClock
from trigger_local.engine import Engine, TriggerRequest
from trigger_local.engine.debounce import Debounce
from trigger_local.errors import AmbiguousProjectError, ConflictError, TaskNotFoundError
from trigger_local.ratelimit import parse_rate_limit
from trigger_local.store.models import DELAYED, PENDING_VERSION, QUEUED, Run, TaskDef, Version

T0 = 1_700_000_000.0
A, B = "proj_a", "proj_b"


def version(project: str, n: int = 1, *extra: TaskDef, hello: TaskDef | None = None) -> Version:
    tasks = [hello or TaskDef(task_id="hello", queue="task/hello"),
             TaskDef(task_id=f"only-{project}", queue=f"task/only-{project}"), *extra]
    return Version(id=f"version_{project}_{n}", project_dir=f"/{project}", created_at=T0 + n,
                   tasks=tasks, project=project)


async def trigger(engine: Engine, task_id: str, project: str | None = None,
                  **options: object) -> Run:
    return (await engine.trigger(TriggerRequest(task_id=task_id, project=project, **options))).run  # type: ignore[arg-type]


@pytest.fixture
async def two(engine: Engine) -> Engine:
    await engine.register_version(version(A))
    await engine.register_version(version(B))
    return engine


async def test_each_project_keeps_its_own_current_version(two: Engine) -> None:
    current_a = two.projects.current_of(A)
    assert current_a is not None and current_a.id == "version_proj_a_1"
    await two.register_version(version(B, 2))
    current_a = two.projects.current_of(A)
    # B's new version replaced nothing of A's
    assert current_a is not None and current_a.id == "version_proj_a_1"
    reloaded = Engine(two.store, two.clock, two.settings)
    await reloaded.load()
    assert {p: v.id for p, v in reloaded.projects.current.items()} \
        == {A: "version_proj_a_1", B: "version_proj_b_2"}


async def test_task_ids_resolve_within_the_named_project_or_the_one_that_has_it(
        two: Engine) -> None:
    assert (await trigger(two, "hello", A)).project == A
    assert (await trigger(two, "only-proj_b")).project == B
    with pytest.raises(AmbiguousProjectError) as ambiguous:
        await trigger(two, "hello")
    assert ambiguous.value.details["projects"] == [A, B] and "/proj_a" in ambiguous.value.message
    with pytest.raises(TaskNotFoundError, match="Known tasks of proj_a: hello, only-proj_a"):
        await trigger(two, "only-proj_b", A)
    with pytest.raises(TaskNotFoundError,
                       match="proj_a: hello, only-proj_a; proj_b: hello, only-proj_b"):
        await trigger(two, "nope")


async def test_runs_take_their_project_queue_and_version(two: Engine) -> None:
    run_a, run_b = await trigger(two, "hello", A), await trigger(two, "hello", B)
    # a child runs in its parent's project
    child = await trigger(two, "hello", parent_run_id=run_b.id)
    assert child.project == B
    dequeued = {r.id: r for r in await two.dequeue(10)}
    assert dequeued[run_a.id].version_id == "version_proj_a_1"
    assert dequeued[run_b.id].version_id == dequeued[child.id].version_id == "version_proj_b_1"
    replayed = await two.replay(run_a.id)
    assert replayed.project == A


async def test_pending_runs_wait_for_their_project(engine: Engine) -> None:
    anywhere = await trigger(engine, "hello")  # nothing indexed yet: no project known
    named = await trigger(engine, "hello", B)
    assert (anywhere.status, anywhere.project, named.status, named.project) \
        == (PENDING_VERSION, None, PENDING_VERSION, B)
    assert engine.projects.status_reason(named) == ("waiting for a version of project proj_b with "
                                                    "task 'hello': "
                                           "run `trigger-local dev` in the project")
    await engine.register_version(version(A))
    read = engine.queries
    claimed, still = await read.runs.get(anywhere.id), await read.runs.get(named.id)
    assert claimed is not None and (claimed.status, claimed.project) == (QUEUED, A)
    assert still is not None and still.status == PENDING_VERSION
    assert (await engine.get_queue("hello", A)).queued == 1


async def test_a_delayed_run_of_no_project_joins_the_one_that_has_its_task(
        engine: Engine, clock: FakeClock) -> None:
    run = await trigger(engine, "hello", delay="10s")
    assert (run.status, run.project) == (DELAYED, None)
    await engine.register_version(version(A))
    clock.advance(11)
    await engine.tick_timers()
    stored = await engine.queries.runs.get(run.id)
    assert stored is not None and (stored.status, stored.project) == (QUEUED, A)


async def test_a_dev_project_runs_only_while_a_session_is_open(engine: Engine,
                                                               clock: FakeClock) -> None:
    await engine.register_version(version(A), dev=True)
    await engine.register_version(version(B))  # through the API alone: always online
    run_a, run_b = await trigger(engine, "hello", A), await trigger(engine, "hello", B)
    assert [r.id for r in await engine.dequeue(10)] == [run_b.id]
    assert engine.projects.status_reason(run_a) \
        == "waiting for `trigger-local dev` in /proj_a to connect"
    await engine.open_session(A)
    await engine.open_session(A)  # a second dev of the same project
    assert [r.id for r in await engine.dequeue(10)] == [run_a.id]
    await engine.close_session(A)
    assert engine.projects.online(A)  # one dev is still there
    clock.advance(5)
    await engine.close_session(A)
    waiting = await trigger(engine, "hello", A)
    assert await engine.dequeue(10) == []
    assert engine.projects.status_reason(waiting) == ("waiting for `trigger-local dev` in /proj_a; "
                                             "it stopped at 2023-11-14T22:13:25.000Z")
    reloaded = Engine(engine.store, engine.clock, engine.settings)
    await reloaded.load()  # a daemon restart: the project still waits for its dev
    assert reloaded.projects.status_reason(waiting) is not None and not reloaded.projects.online(A)


async def test_a_second_directory_cannot_take_a_project_its_dev_serves(engine: Engine) -> None:
    await engine.register_version(version(A), dev=True)
    await engine.open_session(A)
    moved = version(A, 2)
    moved.project_dir = "/elsewhere"
    with pytest.raises(ConflictError, match="served by `trigger-local dev` in /proj_a; /elsewhere"):
        await engine.register_version(moved)
    await engine.close_session(A)
    await engine.register_version(moved)  # its dev stopped: the project may move
    assert engine.projects.records[A].project_dir == "/elsewhere"


async def test_queues_of_one_name_are_paused_per_project(two: Engine) -> None:
    with pytest.raises(AmbiguousProjectError):
        await two.set_queue_paused("hello", True)
    await two.set_queue_paused("hello", True, A)
    run_a, run_b = await trigger(two, "hello", A), await trigger(two, "hello", B)
    assert [r.id for r in await two.dequeue(10)] == [run_b.id]
    assert run_a.status == QUEUED and (await two.get_queue("hello", B)).paused is False


async def test_declarative_schedules_and_rate_limits_sync_per_project(engine: Engine,
                                                                      clock: FakeClock) -> None:
    cron = TaskDef(task_id="nightly", queue="task/nightly",
                   schedule={"crons": ["0 3 * * *"], "timezone": "UTC"})
    limited = TaskDef(task_id="hello", queue="task/hello",
                      rate_limit=parse_rate_limit({"limit": 1, "period": "1m"}))
    await engine.register_version(version(A, 1, cron, hello=limited))
    await engine.register_version(version(B, 1, cron))
    await engine.register_version(version(B, 2))  # B drops its schedule: A's stays
    items, total = await engine.list_schedules()
    assert total == 1 and items[0].project == A
    first_a, second_a = await trigger(engine, "hello", A), await trigger(engine, "hello", A)
    runs_b = [await trigger(engine, "hello", B) for _ in range(2)]
    started = {r.id for r in await engine.dequeue(10)}
    assert len({first_a.id, second_a.id} & started) == 1  # A's queue is rate limited, B's is not
    assert {r.id for r in runs_b} <= started


async def test_idempotency_and_debounce_keys_are_per_project(two: Engine) -> None:
    key_a = await trigger(two, "hello", A, idempotency_key="k")
    key_b = await trigger(two, "hello", B, idempotency_key="k")
    assert key_a.id != key_b.id
    debounce = Debounce(key="d", delay_s=5.0)
    first_a = await trigger(two, "hello", A, debounce=debounce)
    first_b = await trigger(two, "hello", B, debounce=debounce)
    again_a = await trigger(two, "hello", A, debounce=debounce)
    assert first_a.id != first_b.id and again_a.id == first_a.id


async def test_a_stopping_daemon_marks_no_project_as_left(engine: Engine) -> None:
    await engine.register_version(version(A), dev=True)
    await engine.open_session(A)
    engine.projects.forget_sessions()
    await engine.close_session(A)  # the stream of a dev that is still running ends with the daemon
    stored = await engine.queries.projects.get(A)
    assert stored is not None and stored.left_at is None


async def test_a_run_triggered_while_its_project_registers_is_queued(engine: Engine) -> None:
    """The project is known from the start of its registration's transaction, its version
    current once that committed: a trigger prepared in between (its task not found yet) whose
    own transaction runs after the registration's must not wait as PENDING_VERSION for good.
    PostgreSQL's transactions yield, so the trigger comes in mid-registration; SQLite's never
    do, so it comes in just after the commit."""
    registering = asyncio.create_task(engine.register_version(version(A)))
    while A not in engine.projects.records:
        assert not registering.done(), "the registration never made its project known"
        await asyncio.sleep(0)
    assert engine.projects.current_of(A) is None
    run = await trigger(engine, "hello", A)
    await registering
    stored = await engine.queries.runs.get(run.id)
    assert stored is not None and stored.status == QUEUED, stored
