"""Shared fixtures: a fake clock, a real SqliteStore on tmp_path, an Engine over them, and for
the API tests an in-process DaemonServices with an httpx client on the ASGI app.

Test modules may define fixtures of the same names; theirs win for that module."""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, Literal

import httpx
import pytest
from pg_cluster import Cluster, require_postgres

from trigger_local.api.app import create_served_app
from trigger_local.clock import FakeClock
from trigger_local.config import DaemonSettings
from trigger_local.engine import Engine
from trigger_local.errors import ValidationError
from trigger_local.projects import DEFAULT_PROJECT
from trigger_local.store import SqliteStore, Store
from trigger_local.store.models import ProjectDefaults, TaskDef, Version
from trigger_local.store.postgres import PostgresStore

# A suite started in the background by a shell without job control (`cmd &` in a script)
# inherits SIGINT ignored, and so does every CLI process it starts: the tests that press Ctrl-C
# on `trigger --wait` then wait for good. A handled SIGINT here is reset to the default in the
# processes the tests start, where Python turns it into KeyboardInterrupt as at a terminal.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

T0 = 1_700_000_000.0
SECRET = "tr_dev_testsecretkey"


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    """A private PostgreSQL server for the whole session (tests/pg_cluster.py); the tests that
    ask for it skip without PostgreSQL (fail under CI=true)."""
    cluster = Cluster(require_postgres()).start()
    yield cluster
    cluster.stop()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def settings(tmp_path: Path) -> DaemonSettings:
    return DaemonSettings(home=tmp_path)


@pytest.fixture(params=["sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """The engine and API suites run on both backends: the home's SQLite file, and a fresh
    schema on the session's PostgreSQL cluster."""
    opened: Store
    if request.param == "postgres":
        opened = PostgresStore(request.getfixturevalue("pg_cluster").fresh_url())
    else:
        opened = SqliteStore(str(tmp_path / "trigger-local.db"))
    await opened.open()
    yield opened
    await opened.close()


@pytest.fixture
async def engine(store: Store, clock: FakeClock, settings: DaemonSettings) -> Engine:
    eng = Engine(store, clock, settings)
    await eng.load()
    return eng


class InProcessServices:
    """DaemonServices without processes: `next_assignment` dequeues and starts an attempt at once
    (no waiting), `index_project` registers a version of `self.task_ids`."""

    def __init__(self, engine: Engine, settings: DaemonSettings, secret_key: str = SECRET) -> None:
        self.engine, self.settings, self.secret_key = engine, settings, secret_key
        self.task_ids = ["hello", "child"]
        self.retire: set[str] = set()
        self.versions = 0  # the versions index_project made: version_1, version_2, …

    async def next_assignment(self, worker_id: str, wait_s: float, ack: int | None = None
                              ) -> dict[str, Any] | None | Literal["retire"]:
        if worker_id in self.retire:
            return "retire"
        runs = await self.engine.dequeue(1)
        started = await self.engine.start_attempt(runs[0], worker_id, None) if runs else None
        if started is None:
            return None
        run, attempt = started
        return {"run_id": run.id, "attempt": attempt.number, "task_id": run.task_id,
                "payload": run.payload,
                "payload_type": run.payload_type, "metadata": run.metadata,
                "ctx": {"run": {"id": run.id},
                        "attempt": {"number": attempt.number, "id": attempt.id}}}

    async def index_project(self, project_dir: str, dirs: list[str], python: str | None,
                            env: dict[str, str], image: str | None = None, *,
                            project: str = DEFAULT_PROJECT,
                            dev: bool = False, defaults: ProjectDefaults | None = None) -> Version:
        if project_dir.endswith("broken"):
            raise ValidationError("Could not import trigger/broken.py", file="trigger/broken.py",
                                  traceback="Traceback (most recent call last):\nSyntaxError: "
                                            "invalid syntax")
        self.versions += 1
        version = Version(id=f"version_{self.versions}",
                          project_dir=project_dir, created_at=self.engine.clock.now(),
                          python=python or "",
                          dirs=dirs, env=env,
                          tasks=[TaskDef(task_id=t, queue=f"task/{t}") for t in self.task_ids],
                          project=project, defaults=defaults or ProjectDefaults())
        return await self.engine.register_version(version, dev=dev)

    def health(self) -> dict[str, Any]:
        return {"ok": True, "loops": {}}

    def status(self) -> dict[str, Any]:
        return {"executor": "in-process", "pid": 0, "version": "test"}


@pytest.fixture
def services(engine: Engine, settings: DaemonSettings) -> InProcessServices:
    return InProcessServices(engine, settings)


@pytest.fixture
async def api(services: InProcessServices) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the app the daemon serves, authenticated with the secret key."""
    transport = httpx.ASGITransport(app=create_served_app(services))
    async with httpx.AsyncClient(transport=transport, base_url="http://daemon.test",
                                 headers={"Authorization": f"Bearer {SECRET}"}) as client:
        yield client


@pytest.fixture
async def indexed(services: InProcessServices) -> Version:
    """A current version with the tasks `hello` and `child`."""
    return await services.index_project("/proj", ["trigger"], None, {})
