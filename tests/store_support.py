"""The store contract's fixture and builders, shared by tests/test_store_contract*.py: `open_store`
opens a backend by name (a second backend adds a branch to it; the `store` fixture, in
tests/conftest.py, opens each in turn), and `make_run`, `make_wp`, `insert_runs` build the
records the tests write; `pg_store_and_admin` and `write_run` serve the PostgreSQL store's
tests of what happens under its held connection."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from trigger_local.projects import DEFAULT_PROJECT
from trigger_local.store import SqliteStore, Store
from trigger_local.store.models import QUEUED, WP_MANUAL, WP_WAITING, Run, Waitpoint
from trigger_local.store.postgres import PostgresStore

T0 = 1_700_000_000.0
BACKENDS = ["sqlite", "postgres"]
P = DEFAULT_PROJECT


async def open_store(backend: str, path: Path,
                      request: pytest.FixtureRequest | None = None) -> Store:
    store: Store
    if backend == "postgres":  # a fresh schema on the session's cluster (tests/conftest.py)
        assert request is not None, "PostgreSQL needs the fixture request (for pg_cluster)"
        store = PostgresStore(request.getfixturevalue("pg_cluster").fresh_url())
    else:
        assert backend == "sqlite", backend
        store = SqliteStore(str(path / "store.db"))
    await store.open()
    return store


def make_run(run_id: str, *, status: str = QUEUED, at: float = T0, **fields: Any) -> Run:
    values: dict[str, Any] = dict(
        id=run_id, task_id="hello", status=status, snapshot_id=f"snapshot_{run_id}",
        snapshot_kind="queued", queue="task/hello", created_at=at, updated_at=at, queued_at=at,
    )
    values.update(fields)
    return Run(**values)


def make_wp(wp_id: str, *, type_: str = WP_MANUAL, status: str = WP_WAITING,
            **fields: Any) -> Waitpoint:
    return Waitpoint(id=wp_id, type=type_, status=status, created_at=T0, **fields)


async def insert_runs(store: Store, *runs: Run) -> None:
    async with store.tx() as ops:
        await ops.runs.insert_many(list(runs))


# Runs seeded straight into `runs` by SQL (a test's old history) are not in the counters: since
# migration 20 the store counts an insert itself (store/sqlite/counts.py). Run after such a seed.
RECOUNT_SQL = (
    "DELETE FROM run_counts; DELETE FROM queue_counts; "
    "INSERT INTO run_counts (status, n) SELECT status, COUNT(*) FROM runs GROUP BY status; "
    "INSERT INTO queue_counts (project, queue, status, n) SELECT COALESCE(project, ''), queue, "
    "status, COUNT(*) FROM runs WHERE status IN ('QUEUED', 'DEQUEUED', 'EXECUTING') "
    "GROUP BY 1, 2, 3;")


@pytest.fixture(name="store")
async def sqlite_store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    """The `store` of a test file that imports this fixture: a new SQLite file (not the
    conftest's store of both kinds)."""
    opened = SqliteStore(str(tmp_path / "store.db"))
    await opened.open()
    yield opened
    await opened.close()


@asynccontextmanager
async def pg_store_and_admin(url: str) -> AsyncIterator[tuple[PostgresStore, Any]]:
    """A PostgresStore open on `url`, and a connection of its own to change the database (or
    end the store's sessions) under it; both closed after."""
    store = PostgresStore(url)
    await store.open()
    try:
        admin = await asyncpg.connect(url)
        try:
            yield store, admin
        finally:
            await admin.close()
    finally:
        await store.close()


async def write_run(store: Store, n: int) -> None:
    """One transaction of the kept writes a commit sends: run `run_{n}`, its `run.created`
    event (`{"n": n}`) and a request-cache entry `key_{n}`."""
    async with store.tx() as tx:
        await tx.runs.insert(make_run(f"run_{n}"))
        await tx.events.append(f"run_{n}", "run.created", T0, {"n": n})
        await tx.requests.put(f"key_{n}", T0, {"n": n})
