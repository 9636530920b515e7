"""The engine's shared machinery: transactions that publish after commit, and `_move`, the one
function that changes a run's status."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from ..clock import Clock
from ..config import DaemonSettings
from ..errors import ConflictError
from ..ids import new_id
from ..store import Ops, SqliteStore
from ..store.models import Run, Version
from .hub import Hub
from .project_state import Projects
from .states import allowed, kind_for


@dataclass
class Tx:
    """A store transaction plus the notifications to publish once it commits."""

    ops: Ops
    now: float
    emitted: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    wake_keys: set[str] = field(default_factory=set)

    def emit(self, type_: str, **data: Any) -> None:
        self.emitted.append((type_, data))

    def wake(self, key: str) -> None:
        self.wake_keys.add(key)


class EngineBase:
    def __init__(self, store: SqliteStore, clock: Clock, settings: DaemonSettings, hub: Hub | None = None) -> None:
        self.store = store
        self.clock = clock
        self.settings = settings
        self.hub = hub or Hub()
        self.projects = Projects()
        #: versions never change once registered: read each once
        self._versions: dict[str, Version] = {}
        # set by the executor when a normal stop begins: held waits' polls are then refused, so
        # their processes hold no connection (executors/stopping.py)
        self.stopping = False

    @property
    def current_version(self) -> Version | None:
        """The newest current version of any project (each project has its own: `projects`)."""
        return self.projects.latest()

    async def load(self) -> None:
        """Read what the engine caches (each project's current version and record) from the store."""
        read = self.store.read()
        self.projects.load(await read.current_versions(), await read.list_projects())

    async def version_of(self, run: Run, ops: Ops | None = None) -> Version | None:
        """The version `run` runs on: the one it was locked to, else its project's current one
        (what it would start on). None when its project has nothing indexed, or the version row
        is gone."""
        current = self.projects.current_of(run.project)
        if run.version_id is None:
            return current
        if current is not None and run.version_id == current.id:
            return current
        if run.version_id not in self._versions:
            version = await (ops or self.store.read()).get_version(run.version_id)
            if version is None:
                return None
            self._versions[run.version_id] = version
        return self._versions[run.version_id]

    @asynccontextmanager
    async def _tx(self) -> AsyncIterator[Tx]:
        async with self.store.tx() as ops:
            tx = Tx(ops=ops, now=self.clock.now())
            yield tx
        for type_, data in tx.emitted:
            self.hub.publish(type_, data)
        for key in tx.wake_keys:
            self.hub.wake(key)

    async def _move(self, tx: Tx, run: Run, status: str, *, kind: str | None = None, event: str | None = None,
                    description: str = "", data: dict[str, Any] | None = None, **changes: Any) -> Run:
        """Move `run` to `status` if the transition table allows it and nobody moved it first.

        Raises ConflictError otherwise; on success appends a snapshot and an event row, updates
        `run` in place and returns it."""
        if not allowed(run.status, status):
            raise ConflictError(f"Run {run.id} is {run.status}; it cannot become {status}")
        snapshot_id = new_id("snapshot")
        kind = kind or kind_for(status)
        ok = await tx.ops.update_run(run.id, run.snapshot_id, status=status, snapshot_id=snapshot_id,
                                     snapshot_kind=kind, updated_at=tx.now, **changes)
        if not ok:
            raise ConflictError(f"Run {run.id} changed while this request ran; try again")
        await tx.ops.insert_snapshot(snapshot_id, run.id, kind, status, tx.now, description)
        previous = run.status
        run.status, run.snapshot_id, run.snapshot_kind, run.updated_at = status, snapshot_id, kind, tx.now
        for key, value in changes.items():
            setattr(run, key, value)
        payload = {"run_id": run.id, "task_id": run.task_id, "status": status, "from": previous,
                   "kind": kind, "project": run.project, **(data or {})}
        await tx.ops.insert_event(run.id, event or f"run.{status.lower()}", tx.now, payload)
        tx.emit("run.status", **payload, queue=run.queue, tags=run.tags)
        return run

    async def _new_run_snapshot(self, tx: Tx, run: Run, description: str = "created") -> None:
        await tx.ops.insert_snapshot(run.snapshot_id, run.id, run.snapshot_kind, run.status, tx.now, description)
        payload = {"run_id": run.id, "task_id": run.task_id, "status": run.status, "from": None,
                   "kind": run.snapshot_kind, "project": run.project}
        await tx.ops.insert_event(run.id, "run.created", tx.now, payload)
        tx.emit("run.status", **payload, queue=run.queue, tags=run.tags)


def monotonic_ms() -> float:
    return time.monotonic() * 1000
