"""What the engine test files share: an engine on a real store (SQLite, or PostgreSQL through the
`store` fixture) under a fake clock, with
one indexed version whose tasks each file chooses."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from pg_cluster import Cluster

from trigger_local.clock import FakeClock
from trigger_local.config import DaemonSettings
from trigger_local.engine import Engine, TriggerRequest, history
from trigger_local.engine.events import Event
from trigger_local.store import SqliteStore, Store
from trigger_local.store.models import Run, TaskDef, Version
from trigger_local.store.postgres import PostgresStore

T0 = 1_700_000_000.0
#: the task most engine tests trigger: async, so its runs share a process
HELLO = TaskDef(task_id="hello", queue="task/hello", shared=True)


async def open_engine(tmp_path: Path, clock: FakeClock, *, tasks: list[TaskDef],
                      store: Store | None = None, **settings: Any) -> Engine:
    """An open engine with `version_1` (holding `tasks`) registered, on `store` (an open one,
    e.g. the parametrised `store` fixture: both backends) or a new SQLite file; close with
    `engine.store.close()`."""
    if store is None:
        store = SqliteStore(str(tmp_path / "engine.db"))
        await store.open()
    engine = Engine(store, clock, DaemonSettings(home=tmp_path, **settings))
    await engine.register_version(Version(id="version_1", project_dir="/proj", created_at=T0,
                                          tasks=tasks))
    return engine


class ProbeExecutor:
    """An executor a test's dispatcher drives: room for `room` runs, no held run; it starts
    and resumes nothing (a test's subclass says what its `assign` does)."""

    name = "probe"
    room = 0

    def capacity(self) -> int:
        return self.room

    def describe(self) -> dict[str, object]:
        return {}

    def holds(self, worker_id: str) -> bool:
        return False

    async def assign(self, run: Run) -> bool:
        return False

    async def resume(self, run: Run) -> bool:
        return False


@pytest.fixture(name="engine")
async def hello_engine(tmp_path: Path) -> AsyncIterator[Engine]:
    """The `engine` of a test file that imports this fixture: a new SQLite file, `HELLO`."""
    eng = await open_engine(tmp_path, FakeClock(T0), tasks=[HELLO])
    yield eng
    await eng.store.close()


@pytest.fixture(name="engine")
async def noop_engine(tmp_path: Path) -> AsyncIterator[Engine]:
    """The `engine` of a test file that imports this fixture: a new SQLite file, one `noop`
    task, room for 1,000 runs at once."""
    eng = await open_engine(tmp_path, FakeClock(T0), concurrency=1000,
                            tasks=[TaskDef(task_id="noop", queue="task/noop")])
    yield eng
    await eng.store.close()


@pytest.fixture(name="hub_events")
def seen_events(engine: Engine) -> list[Event]:
    """`hub_events` of a test file that imports this fixture: every event the engine's hub
    publishes, in order."""
    seen: list[Event] = []
    engine.hub.subscribe(Event, seen.append)
    return seen


async def trigger(engine: Engine, **options: Any) -> Run:
    """A run of `hello`, triggered with `options` (fields of TriggerRequest)."""
    return (await engine.trigger(TriggerRequest(task_id="hello", **options))).run


async def get(engine: Engine, run_id: str) -> Run:
    run = await engine.queries.runs.get(run_id)
    assert run is not None
    return run


async def start(engine: Engine, run_id: str) -> Run:
    """Dequeue (if not yet dequeued) and start `run_id` on `worker_1`; others stay DEQUEUED."""
    await engine.dequeue(10)
    started = await engine.start_attempt(await get(engine, run_id), "worker_1", 11)
    assert started is not None
    return started[0]


async def snapshots_of(engine: Engine, run_id: str) -> list[dict[str, Any]]:
    """The run's snapshots as readers see them (engine/history.py: named by its events)."""
    run = await engine.queries.runs.get(run_id)
    assert run is not None
    return await history.snapshots(engine.queries, run)


@asynccontextmanager
async def two_daemons(url: str, tmp_path: Path, clock: FakeClock, *, tasks: list[TaskDef],
                      **settings: Any) -> AsyncIterator[tuple[Engine, Engine]]:
    """Two engines — two daemons, `daemon_a` and `daemon_b` — on the PostgreSQL database at
    `url`, under one clock, each with its own home under `tmp_path` and `settings`: the first
    registered `version_1` (holding `tasks`), the second loaded it. Their stores close after."""
    stores = [PostgresStore(url, daemon_id="daemon_a"), PostgresStore(url, daemon_id="daemon_b")]
    try:
        for store in stores:
            # (their write connections count into shards of their own: schema_lists.py,
            # migration 9)
            await store.open()
        (tmp_path / "a").mkdir()
        (tmp_path / "b").mkdir()
        first = await open_engine(tmp_path / "a", clock, store=stores[0], tasks=tasks,
                                  **settings)
        second = Engine(stores[1], clock, DaemonSettings(home=tmp_path / "b", **settings))
        await second.load()
        yield first, second
    finally:
        for store in stores:
            await store.close()


@asynccontextmanager
async def pg_engine(url: str, tmp_path: Path, *, tasks: list[TaskDef]
                    ) -> AsyncIterator[Engine]:
    """One engine — daemon `daemon_a` — on the PostgreSQL database at `url`, on a fake clock at
    T0, `version_1` holding `tasks`; its store closes after."""
    store = PostgresStore(url, daemon_id="daemon_a")
    await store.open()
    try:
        yield await open_engine(tmp_path, FakeClock(T0), store=store, tasks=tasks)
    finally:
        await store.close()


@pytest.fixture(name="engine")
async def pg_t_engine(pg_cluster: Cluster, tmp_path: Path) -> AsyncIterator[Engine]:
    """The `engine` of a test file that imports this fixture: `pg_engine` on a new schema of
    the session's cluster, one task `t` (queue `task/t`)."""
    async with pg_engine(pg_cluster.fresh_url(), tmp_path,
                         tasks=[TaskDef(task_id="t", queue="task/t")]) as engine:
        yield engine


class WarmPlaces:
    """A warm place for every run (engine/placing.py's `Placer` and its placement in one, an
    edge: the pool's is tested with real processes): a trigger then starts its run in its own
    transaction (engine/starting.py)."""

    worker_id, pid, executor = "worker_1", None, "warm"

    def may_place(self, version_id: str, task_id: str) -> bool:
        return True

    def place(self, run: Any, version_id: str) -> WarmPlaces:
        return self

    def started(self, run: Any, attempt: Any) -> None:
        pass

    def release(self) -> None:
        pass
