"""A trigger on an idle daemon starts its run in its own transaction (engine/starting.py,
issue #13): the run is EXECUTING after ONE commit, its place is handed the attempt after that
commit, and the dispatcher is not woken for it. The dispatcher's rules still hold: a run queued
first is not overtaken, and a queue limit, a paused queue, an offline dev project and a rate
limit keep the new run QUEUED (its place given back, nothing of the tried dequeue written).
Real SQLite store; the executor's side (`Placer`) is a recording fake, an edge."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from engine_support import T0, open_engine

from trigger_local.clock import FakeClock
from trigger_local.dispatch.dispatcher import Dispatcher, wakes
from trigger_local.engine import Engine, TriggerRequest, starting
from trigger_local.engine.events import Event, RunStatusChanged
from trigger_local.engine.states import K_QUEUED
from trigger_local.ratelimit import parse_rate_limit
from trigger_local.store.models import EXECUTING, QUEUED, Attempt, Run, TaskDef, Version


class Slot:
    def __init__(self, log: list[str], run_id: str) -> None:
        self.log, self.run_id = log, run_id
        self.worker_id, self.pid, self.executor = "worker_1", 123, "probe"

    def started(self, run: Run, attempt: Attempt) -> None:
        self.log.append(f"started {run.id} {run.status} attempt {attempt.number}")

    def release(self) -> None:
        self.log.append(f"release {self.run_id}")


class Places:
    """A warm place for every run (or none once `full`); like the pool, it would send the
    assignment when the run's move to EXECUTING is published (after the commit)."""

    def __init__(self, engine: Engine) -> None:
        self.log: list[str] = []
        self.full = False
        engine.hub.subscribe(RunStatusChanged, self._on_moved)

    def place(self, run: Run, version_id: str) -> Slot | None:
        if self.full:
            return None
        self.log.append(f"place {run.id} on {version_id}")
        return Slot(self.log, run.id)

    def _on_moved(self, event: RunStatusChanged) -> None:
        if event.status == EXECUTING:
            self.log.append(f"published {event.run_id} EXECUTING")


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[Engine]:
    eng = await open_engine(tmp_path, FakeClock(T0), tasks=[
        TaskDef(task_id="hello", queue="task/hello", shared=True),
        TaskDef(task_id="other", queue="task/other", shared=True),
        TaskDef(task_id="one-at-a-time", queue="task/one", queue_concurrency_limit=1),
        TaskDef(task_id="limited", queue="task/limited",
                rate_limit=parse_rate_limit({"limit": 1, "period": "1m"}))])
    yield eng
    await eng.store.close()


@pytest.fixture
def places(engine: Engine) -> Places:
    engine.ctx.placer = places = Places(engine)
    return places


@asynccontextmanager
async def counting(engine: Engine) -> AsyncIterator[list[int]]:
    """The store transactions opened meanwhile."""
    opened = [0]
    real = engine.store.tx

    @asynccontextmanager
    async def tx(exclusive: bool = False, starts: bool = False) -> AsyncIterator[Any]:
        opened[0] += 1
        async with real(exclusive, starts) as view:
            yield view

    engine.store.tx = tx  # type: ignore[method-assign]
    try:
        yield opened
    finally:
        engine.store.tx = real  # type: ignore[method-assign]


@pytest.fixture
def published(engine: Engine) -> Iterator[list[Event]]:
    seen: list[Event] = []
    unsubscribe = engine.hub.subscribe(Event, seen.append)
    yield seen
    unsubscribe()


async def trigger(engine: Engine, task_id: str = "hello", **options: Any) -> Run:
    return (await engine.trigger(TriggerRequest(task_id=task_id, **options))).run


def advance(engine: Engine, seconds: float) -> None:
    clock = engine.clock
    assert isinstance(clock, FakeClock)
    clock.advance(seconds)


async def stored(engine: Engine, run_id: str) -> Run:
    run = await engine.queries.runs.get(run_id)
    assert run is not None
    return run


async def test_an_idle_trigger_starts_its_run_in_one_commit(
        engine: Engine, places: Places, published: list[Event]) -> None:
    async with counting(engine) as opened:
        run = await trigger(engine)
    assert opened == [1]
    assert run.status == EXECUTING and run.attempt_count == 1 and run.worker_id == "worker_1"
    assert (await stored(engine, run.id)).status == EXECUTING
    [attempt] = await engine.queries.attempts.for_run(run.id)
    assert (attempt.status, attempt.worker_id, attempt.pid) == (EXECUTING, "worker_1", 123)
    # the place was taken and told its attempt in the transaction; the move to EXECUTING, on
    # which the pool sends the assignment, was published after the commit
    assert places.log == [f"place {run.id} on version_1", f"started {run.id} EXECUTING attempt 1",
                          f"published {run.id} EXECUTING"]
    assert engine.ctx.reserved == {}
    # its history is a dispatched run's: created, then executing from QUEUED
    events = await engine.queries.events.after(0, run_id=run.id)
    assert [(e.type, e.data.get("from")) for e in events] == \
        [("run.created", None), ("run.executing", QUEUED)]
    # the stored creation says what the run was made as (its row said QUEUED), as the
    # executing event's `from` does; only the published one says EXECUTING (starting.py)
    assert (events[0].data["status"], events[0].data["kind"]) == (QUEUED, K_QUEUED)
    assert events[0].data["snapshot_id"] != events[1].data["snapshot_id"]
    # nothing for the dispatcher to do: no event of this trigger wakes it
    assert published and not [e for e in published if wakes(e)]


async def test_a_trigger_does_not_overtake_a_run_queued_before_it(
        engine: Engine, places: Places, published: list[Event]) -> None:
    places.full = True  # no room: the first run waits in its queue
    first = await trigger(engine, "other")
    advance(engine, 1)
    places.full = False
    second = await trigger(engine)
    assert (await stored(engine, first.id)).status == QUEUED
    assert (await stored(engine, second.id)).status == QUEUED
    assert places.log == [f"place {second.id} on version_1", f"release {second.id}"]
    assert engine.ctx.reserved == {}  # the tried dequeue's reservation was let go
    assert any(wakes(e) for e in published)  # the dispatcher starts them, the first first
    assert [r.id for r in await engine.dequeue(1)] == [first.id]


async def test_a_higher_priority_trigger_may_start_before_an_older_run(
        engine: Engine, places: Places) -> None:
    places.full = True
    first = await trigger(engine, "other")
    advance(engine, 1)
    places.full = False
    urgent = await trigger(engine, priority=60)  # the dispatcher too would take it first
    assert urgent.status == EXECUTING
    assert (await stored(engine, first.id)).status == QUEUED


async def test_a_queue_at_its_limit_keeps_the_new_run_queued(engine: Engine,
                                                            places: Places) -> None:
    running = await trigger(engine, "one-at-a-time")
    assert running.status == EXECUTING
    waiting = await trigger(engine, "one-at-a-time")
    assert (await stored(engine, waiting.id)).status == QUEUED
    assert places.log[-1] == f"release {waiting.id}"


async def test_a_paused_queue_keeps_the_new_run_queued(engine: Engine, places: Places) -> None:
    await trigger(engine)  # makes the queue
    await engine.set_queue_paused("task/hello", True)
    run = await trigger(engine)
    assert (await stored(engine, run.id)).status == QUEUED
    assert places.log[-1] == f"release {run.id}"


async def test_an_offline_dev_project_keeps_the_new_run_queued(engine: Engine,
                                                              places: Places) -> None:
    await engine.register_version(Version(
        id="version_dev", project_dir="/dev", created_at=T0 + 1, project="devproj",
        tasks=[TaskDef(task_id="devtask", queue="task/devtask", shared=True)]), dev=True)
    run = await trigger(engine, "devtask", project="devproj")
    assert (await stored(engine, run.id)).status == QUEUED  # no `dev` session is open
    advance(engine, 1)
    await engine.open_session("devproj")
    online = await trigger(engine, "devtask", project="devproj")
    # the run queued first goes first, even now that the project is online
    assert (await stored(engine, online.id)).status == QUEUED
    assert [r.id for r in await engine.dequeue(2)] == [run.id, online.id]


async def test_a_rate_limit_holds_for_a_run_that_could_start_at_once(
        engine: Engine, places: Places) -> None:
    first = await trigger(engine, "limited")
    assert first.status == EXECUTING  # the window's one start
    second = await trigger(engine, "limited")
    assert (await stored(engine, second.id)).status == QUEUED
    assert places.log[-1] == f"release {second.id}"
    assert await engine.dequeue(5) == []  # the window is still closed for the dispatcher too


async def test_a_commit_that_fails_gives_the_place_back(engine: Engine, places: Places) -> None:
    real = engine.store.tx

    @asynccontextmanager
    async def failing(exclusive: bool = False, starts: bool = False) -> AsyncIterator[Any]:
        async with real(exclusive, starts) as view:
            yield view
            raise OSError("disk full")  # as a COMMIT that fails: everything is rolled back

    engine.store.tx = failing  # type: ignore[method-assign]
    with pytest.raises(OSError):
        await trigger(engine)
    engine.store.tx = real  # type: ignore[method-assign]
    # never published: the pool sends nothing
    assert [line.split()[0] for line in places.log] == ["place", "started", "release"]
    assert await engine.queries.runs.with_status([QUEUED, EXECUTING]) == []  # nothing stands
    assert engine.ctx.reserved == {}


async def test_a_part_that_fails_after_the_start_gives_the_place_back(
        engine: Engine, places: Places, monkeypatch: pytest.MonkeyPatch) -> None:
    def failing(tx: object, run_id: str, **facts: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(starting, "_created", failing)
    with pytest.raises(OSError):
        await trigger(engine)
    assert [line.split()[0] for line in places.log] == ["place", "release"]  # nothing published
    assert await engine.queries.runs.with_status([QUEUED, EXECUTING]) == []


async def test_without_a_place_the_run_waits_for_the_dispatcher(engine: Engine,
                                                                places: Places) -> None:
    places.full = True
    run = await trigger(engine)
    assert run.status == QUEUED and places.log == []
    engine.ctx.placer = None
    assert (await trigger(engine)).status == QUEUED


class _Room:
    """An executor with room, and nothing to start (the dispatcher only asks it this much)."""

    def capacity(self) -> int:
        return 1

    def describe(self) -> dict[str, object]:
        return {}


async def test_the_dispatcher_says_when_no_run_waits_for_a_round(engine: Engine) -> None:
    """The pool offers a trigger a place only while the dispatcher is idle (executors/at_once.py):
    its last dequeue took less than it had room for and nothing but room came since."""
    dispatcher = Dispatcher(engine, _Room())  # type: ignore[arg-type]
    assert not dispatcher.idle()  # no round yet
    engine.ctx.due.resync(None)
    await dispatcher.step()  # a round that finds nothing
    assert dispatcher.idle()
    await trigger(engine)  # no placer: QUEUED, and its creation wakes the dispatcher
    assert not dispatcher.idle()
