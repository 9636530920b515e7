"""Rate limits (GCRA in dequeue, woken by next_due_at) and debounce, under a fake clock."""

from __future__ import annotations

import json

import pytest

from trigger_local.api.options import trigger_request
from trigger_local.clock import FakeClock
from trigger_local.config import DaemonSettings
from trigger_local.engine import Engine, TriggerRequest
from trigger_local.engine.debounce import Debounce, parse_debounce
from trigger_local.engine.dequeue import RATE_PAGE_MAX
from trigger_local.errors import ValidationError
from trigger_local.ratelimit import gcra, parse_rate_limit
from trigger_local.store import Store
from trigger_local.store.models import DELAYED, QUEUED, TaskDef, Version

T0 = 1_700_000_000.0


@pytest.fixture
async def engine(store: Store, clock: FakeClock, settings: DaemonSettings) -> Engine:
    eng = Engine(store, clock, settings)
    await eng.register_version(Version(id="version_1", project_dir="/proj", created_at=T0, tasks=[
        TaskDef(task_id="limited", queue="task/limited",
                rate_limit=parse_rate_limit({"limit": 2, "period": "10s"})),
        TaskDef(task_id="per-key", queue="task/per-key",
                rate_limit=parse_rate_limit({"limit": 1, "period": "1m", "per_key": True})),
        TaskDef(task_id="hello", queue="task/hello")]))
    return eng


async def trigger(engine: Engine, task_id: str, n: int = 1, **options: object) -> list[str]:
    req = TriggerRequest(task_id=task_id, **options)  # type: ignore[arg-type]
    return [(await engine.trigger(req)).run.id for _ in range(n)]


def test_gcra_allows_a_burst_then_one_per_interval() -> None:
    tat = None
    allowed = []
    for _ in range(3):
        ok, value = gcra(tat, 0.0, 2, 10.0)
        allowed.append(ok)
        tat = value if ok else tat
    assert allowed == [True, True, False]
    assert gcra(tat, 0.0, 2, 10.0) == (False, 5.0)  # the next start is allowed at t=5
    assert gcra(tat, 5.0, 2, 10.0)[0]


@pytest.mark.parametrize("value",
                         [{"limit": 0, "period": "1m"}, {"limit": 5},
                          {"limit": 5, "period": "soon"}, 3])
def test_invalid_rate_limits_are_refused(value: object) -> None:
    with pytest.raises(ValidationError):
        parse_rate_limit(value)


async def test_runs_beyond_the_limit_stay_queued_until_the_window_allows(engine: Engine,
                                                                         clock: FakeClock) -> None:
    ids = await trigger(engine, "limited", 5)
    started = {r.id for r in await engine.dequeue(10)}
    assert len(started) == 2
    assert await engine.dequeue(10) == []
    waiting = await engine.queries.runs.get_many([i for i in ids if i not in started])
    assert [r.status for r in waiting] == [QUEUED] * 3
    # the dispatcher's one timer wakes when the window lets the next run start
    assert await engine.queries.timers.next_due_at() == T0 + 5
    assert T0 + 5 in engine.ctx.due.times()  # and the engine's schedule has it (engine/due.py)
    clock.advance(4.9)
    assert await engine.dequeue(10) == []
    clock.advance(0.1)
    assert await engine.tick_timers() >= 1
    assert len(await engine.dequeue(10)) == 1
    clock.advance(20)  # a full period later the burst is available again
    assert len(await engine.dequeue(10)) == 2


async def test_other_queues_are_not_held_back(engine: Engine) -> None:
    await trigger(engine, "limited", 4)
    other = await trigger(engine, "hello", 2)
    started = {r.id for r in await engine.dequeue(10)}
    assert set(other) <= started and len(started) == 4



async def test_a_refused_run_takes_no_room_from_another_queue(engine: Engine,
                                                              clock: FakeClock) -> None:
    # the window's burst is spent; the limited queue's next run is older than another queue's
    await trigger(engine, "limited", 2)
    assert len(await engine.dequeue(10)) == 2
    clock.advance(1)
    refused = await trigger(engine, "limited")
    clock.advance(1)
    other = await trigger(engine, "hello")
    # room for one: the refused run does not take it (the other queue's run waited for the
    # limited queue's window, seconds to hours, while a process had room)
    assert [r.id for r in await engine.dequeue(1)] == other
    assert await engine.dequeue(1) == []
    clock.advance(10)
    assert [r.id for r in await engine.dequeue(1)] == refused


async def test_per_key_limits_each_concurrency_key(engine: Engine, clock: FakeClock) -> None:
    a = await trigger(engine, "per-key", 2, concurrency_key="a")
    b = await trigger(engine, "per-key", 1, concurrency_key="b")
    first = await engine.dequeue(10)
    assert sorted(r.concurrency_key or "" for r in first) == ["a", "b"] \
        and b[0] in {r.id for r in first}
    assert await engine.dequeue(10) == []
    clock.advance(60)
    assert [r.id for r in await engine.dequeue(10)] \
        == [i for i in a if i not in {r.id for r in first}]



async def test_a_key_its_rate_limit_refuses_takes_no_room_from_another_key(
        engine: Engine, clock: FakeClock) -> None:
    spent = await trigger(engine, "per-key", concurrency_key="a")
    assert [r.id for r in await engine.dequeue(1)] == spent  # key a's start of the minute
    clock.advance(1)
    refused = await trigger(engine, "per-key", 2, concurrency_key="a")
    clock.advance(1)
    other = await trigger(engine, "per-key", concurrency_key="b")
    assert [r.id for r in await engine.dequeue(1)] == other
    clock.advance(60)
    assert [r.id for r in await engine.dequeue(1)][0] in refused


@pytest.fixture
def pages(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The page sizes the dequeue reads the per-key and limited queues' runs with (both stores)."""
    from trigger_local.store.postgres.runs import PgRuns
    from trigger_local.store.sqlite.runs import SqliteRuns

    read: list[int] = []
    for cls in (SqliteRuns, PgRuns):
        def spy(self: object, project: str, queue: str, limit: int, *args: object,
                _real: object = cls.queued, **kwargs: object) -> object:
            if queue in ("task/limited", "task/per-key"):
                read.append(limit)
            return _real(self, project, queue, limit, *args, **kwargs)  # type: ignore[operator]
        monkeypatch.setattr(cls, "queued", spy)
    return read


async def test_a_queue_its_rate_limit_refuses_is_read_one_page_at_a_time(
        engine: Engine, clock: FakeClock, pages: list[int]) -> None:
    # a limit of the whole queue refuses every run alike: the first page is all a round reads,
    # however deep the backlog; a per-key limit's page grows past refused keys, up to a bound
    await trigger(engine, "limited", 2)
    assert len(await engine.dequeue(10)) == 2
    await trigger(engine, "limited", 300)
    pages.clear()
    assert await engine.dequeue(1) == []
    assert pages == [1], pages
    await trigger(engine, "per-key", concurrency_key="a")
    assert len(await engine.dequeue(1)) == 1
    await trigger(engine, "per-key", RATE_PAGE_MAX + 200, concurrency_key="a")
    pages.clear()
    assert await engine.dequeue(1) == []
    assert pages and max(pages) == RATE_PAGE_MAX, pages


async def test_indexing_without_a_rate_limit_lifts_it(engine: Engine) -> None:
    await engine.register_version(Version(id="version_2", project_dir="/proj", created_at=T0,
                                          tasks=[TaskDef(task_id="limited", queue="task/limited")]))
    await trigger(engine, "limited", 5)
    assert len(await engine.dequeue(10)) == 5


# -- debounce -------------------------------------------------------------------------------
def debounced(payload: dict, **debounce: object) -> TriggerRequest:
    req = TriggerRequest(task_id="hello", payload=json.dumps(payload))
    req.debounce = parse_debounce({"key": "user-1", "delay": "5s", **debounce})
    return req


async def test_repeated_triggers_collapse_into_one_delayed_run(engine: Engine,
                                                               clock: FakeClock) -> None:
    first = await engine.trigger(debounced({"n": 1}))
    assert first.run.status == DELAYED and first.run.delay_until == T0 + 5
    clock.advance(3)
    second = await engine.trigger(debounced({"n": 2}))
    assert second.run.id == first.run.id and second.cached
    run = await engine.queries.runs.get(first.run.id)
    assert run is not None and run.delay_until == T0 + 8 \
        and json.loads(run.payload or "") == {"n": 1}
    clock.advance(5)
    await engine.tick_timers()
    assert [r.id for r in await engine.dequeue(10)] == [first.run.id]
    # the run started: the same key now makes a new run
    third = await engine.trigger(debounced({"n": 3}))
    assert third.run.id != first.run.id and third.run.status == DELAYED


async def test_trailing_mode_uses_the_last_payload(engine: Engine, clock: FakeClock) -> None:
    first = await engine.trigger(debounced({"n": 1}, mode="trailing"))
    for n in (2, 3):
        clock.advance(1)
        await engine.trigger(debounced({"n": n}, mode="trailing"))
    run = await engine.queries.runs.get(first.run.id)
    assert run is not None and json.loads(run.payload or "") == {"n": 3}


async def test_max_delay_caps_how_far_triggers_push_the_start(engine: Engine,
                                                              clock: FakeClock) -> None:
    first = await engine.trigger(debounced({}, max_delay="8s"))
    for _ in range(5):
        clock.advance(2)
        await engine.trigger(debounced({}, max_delay="8s"))
    run = await engine.queries.runs.get(first.run.id)
    assert run is not None and run.delay_until == T0 + 8


def test_api_debounce_option_is_parsed_from_camel_case() -> None:
    req = trigger_request("hello",
                          {"options": {"debounce": {"key": "k", "delay": "1m", "mode": "trailing",
                                                             "maxDelay": "5m"}}})
    assert req.debounce == Debounce(key="k", delay_s=60.0, mode="trailing", max_delay_s=300.0)
    with pytest.raises(ValidationError, match="debounce.mode"):
        trigger_request("hello",
                        {"options": {"debounce": {"key": "k", "delay": "1s", "mode": "middle"}}})
