"""A shared process's successor, started before it is needed.

A shared task process takes `warm_runs_per_process` runs, then gets no more and retires once
empty (executors/sharing.py `room`). If the process that takes over were only started then,
every run of the version would wait for its boot — a Python start and the task modules'
imports, 0.3–1 s of CPU-bound work on a loaded machine — once per share: in a burst of no-op
runs at concurrency 4 that stall halved the throughput (issue #13). So when a shared process
has taken `SUCCESSION_AT` of its share and no other process of its version has room, the pool
starts the next one beside it; the old one goes on taking runs (runs pack into the process that
executes the most, `SharedRuns.pick`) until its share is taken, and the new one, warm by then,
takes the runs from there.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, Protocol

import structlog

from ..config import DaemonSettings
from ..errors import SpawnRefused, SpawnUnavailable
from ..store.models import Run, Version
from .base import Spawner
from .sharing import SharedRuns
from .warm import boots
from .workers import KILLED, WorkerHandle

if TYPE_CHECKING:
    from ..engine import Engine

log = structlog.get_logger("executor")

#: the part of its share a shared process has taken when its successor starts
SUCCESSION_AT = 0.75
#: shares smaller than this start no successor ahead (a process that serves a handful of runs
#: boots as often as its runs come: one more process at a time would only add to it)
MIN_SHARE = 100


class Pool(Protocol):
    """What of the pool (executors/pool.py `PoolExecutor`) a succession reads and calls."""

    engine: Engine
    settings: DaemonSettings
    spawner: Spawner
    sharing: SharedRuns
    workers: dict[str, WorkerHandle]

    @property
    def stopping(self) -> bool: ...

    def live_processes(self) -> int: ...

    def spawn(self, job: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]: ...

    async def start_worker(self, version: Version, run: Run, shared: bool) -> WorkerHandle: ...


class Succession:
    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self._succeeded: set[str] = set()  # the processes whose successor is started
        self.started = 0  # successors started (the status route's executor.successors)

    def after_assign(self, worker: WorkerHandle, version: Version, run: Run) -> None:
        """`run` was just given to the shared process `worker`: start its successor if due."""
        pool, share = self.pool, self.pool.settings.warm_runs_per_process
        if share < MIN_SHARE or worker.id in self._succeeded or pool.stopping \
                or worker.runs_done + len(worker.runs) < share * SUCCESSION_AT:
            return
        for other in pool.workers.values():
            if other is not worker and other.version_id == version.id and other.shared \
                    and other.state != KILLED and pool.sharing.room(other) > 0:
                return  # one with room takes over already
        if pool.live_processes() >= pool.settings.max_processes:
            return  # no room for one more: the next run waits for a process to boot
        if version.id not in pool.engine.projects.current_ids():
            return  # replaced: a process of it retires once empty (warm.py), unused
        limit = pool.spawner.boot_limit()
        if limit is not None and boots(pool.workers.values(), limit) >= limit:
            return  # boots under way fill spawn_concurrency: a later run's assignment starts it
        self._succeeded &= pool.workers.keys()  # forget the ones gone
        self._succeeded.add(worker.id)
        self.started += 1
        pool.spawn(self._start(version, run))

    async def _start(self, version: Version, run: Run) -> None:
        try:
            await self.pool.start_worker(version, run, True)
        except (SpawnRefused, SpawnUnavailable) as exc:
            log.info("could not start a shared process's successor", error=str(exc))
