"""What the engine test files share: an engine on a real store (SQLite, or PostgreSQL through the
`store` fixture) under a fake clock, with
one indexed version whose tasks each file chooses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trigger_local.clock import FakeClock
from trigger_local.config import DaemonSettings
from trigger_local.engine import Engine, history
from trigger_local.store import SqliteStore, Store
from trigger_local.store.models import TaskDef, Version

T0 = 1_700_000_000.0


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


async def snapshots_of(engine: Engine, run_id: str) -> list[dict[str, Any]]:
    """The run's snapshots as readers see them (engine/history.py: named by its events)."""
    run = await engine.queries.runs.get(run_id)
    assert run is not None
    return await history.snapshots(engine.queries, run)
