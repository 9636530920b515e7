"""The pool's side of a hand-over (engine/handover.py): inside a group commit that freed slots
of shared processes, which process takes each next run; after the commit, its assignment.

Only shared processes that are up take runs here (a slot the batch freed, or room they had):
no process is started inside a commit, and an exclusive worker freed by the batch becomes idle
only once its events are published, so the dispatcher keeps those cases. A run placed here has
its slot taken at once (`executing`), as `PoolExecutor.assign` takes it before awaiting the
start, so neither the dispatcher nor another hand-over gives the same slot twice.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Coroutine, Sequence
from typing import Any, Protocol

from ..config import DaemonSettings
from ..engine import Engine
from ..engine.events import RunStatusChanged
from ..engine.handover import Placement
from ..store.models import Attempt, Run, Version
from ..supervise import report
from .base import Spawner
from .sharing import SharedRuns, claim, claimed, unclaim
from .workers import WorkerHandle


class Pool(Protocol):
    """What of the pool (executors/pool.py `PoolExecutor`) a hand-over reads and calls."""

    name: str
    engine: Engine
    settings: DaemonSettings
    spawner: Spawner
    sharing: SharedRuns
    workers: dict[str, WorkerHandle]
    by_run: dict[str, str]
    versions: dict[str, Version]

    @property
    def stopping(self) -> bool: ...

    def spawn(self, job: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]: ...

    def wake(self) -> None: ...

    async def give(self, worker: WorkerHandle, version: Version, run: Run, attempt: Attempt,
                   shared: bool) -> None: ...


class PoolPlaces:
    """`engine.handover.Places` for a `PoolExecutor`."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self._opened: Counter[str] = Counter()  # slots this batch freed, by worker
        self._given: list[tuple[WorkerHandle, Version, Run, asyncio.Future[Any]]] = []
        self.runs = 0  # runs started by hand-overs (the status route, tests)

    def room(self, freed: Sequence[RunStatusChanged],
             resumed: Sequence[RunStatusChanged]) -> int:
        pool = self.pool
        self._opened.clear()
        if pool.stopping or pool.spawner.problem():
            return 0
        for event in freed:
            worker = self._holder(event.run_id)
            if worker is not None and event.run_id in worker.executing:
                self._opened[worker.id] += 1
        for event in resumed:  # executing again in its process, not yet in `executing`
            worker = self._holder(event.run_id)
            if worker is not None and event.run_id in worker.runs \
                    and event.run_id not in worker.executing:
                self._opened[worker.id] -= 1
        return sum(self._room(w) for w in pool.workers.values())

    def _holder(self, run_id: str) -> WorkerHandle | None:
        """The shared process that holds `run_id`, if any."""
        worker = self.pool.workers.get(self.pool.by_run.get(run_id, ""))
        return worker if worker is not None and worker.shared else None

    def _room(self, worker: WorkerHandle) -> int:
        return self.pool.sharing.room(worker, self._opened[worker.id])

    def fits(self, runs: Sequence[Run]) -> int:
        taken: Counter[str] = Counter()  # slots the runs before take, by worker
        for fit, run in enumerate(runs):
            picked = self._pick(run, taken)
            if picked is None:
                return fit
            taken[picked[0].id] += 1
        return len(runs)

    def place(self, run: Run) -> Placement | None:
        picked = self._pick(run)
        if picked is None:
            return None
        worker, version = picked
        claim(self.pool.by_run, worker, run.id, run.attempt_count + 1)  # `_give` checks it
        return Placement(worker.id, worker.pid, self.pool.name,
                         lambda done: self._follow(worker, version, run, done))

    def _pick(self, run: Run, taken: Counter[str] | None = None
              ) -> tuple[WorkerHandle, Version] | None:
        """The shared process of the run's version with room that executes the most runs (as
        `SharedRuns.pick`: runs pack into few processes); `taken`: slots already promised to
        runs placed before this one (`fits`), by worker."""
        pool = self.pool
        version = pool.versions.get(run.version_id or "")  # read by the dispatcher's start
        if version is None or pool.spawner.refuses(run, version):
            return None
        task = version.task(run.task_id)
        if task is None or not task.shared or pool.settings.runs_per_process <= 1:
            return None
        taken = taken or Counter()
        best: WorkerHandle | None = None
        for worker in pool.workers.values():
            busy = len(worker.executing) + taken[worker.id]
            if worker.version_id == version.id and self._room(worker) > taken[worker.id] \
                    and pool.spawner.fits(worker, run) \
                    and (best is None or busy > len(best.executing) + taken[best.id]):
                best = worker
        return None if best is None else (best, version)

    def _follow(self, worker: WorkerHandle, version: Version, run: Run,
                done: asyncio.Future[Any]) -> None:
        if not self._given:  # one job takes every start of the batch, after its commit
            self.pool.spawn(self._give())
        self._given.append((worker, version, run, done))

    async def _give(self) -> None:
        given, self._given = self._given, []
        for worker, version, run, done in given:
            try:
                started = await done
            except Exception:  # noqa: BLE001 - its start or the commit failed: nothing started
                started = None
            if started is None:
                unclaim(self.pool.by_run, worker, run.id)
                self.pool.wake()
                continue
            self.runs += 1
            if not claimed(self.pool.by_run, worker, run.id):
                continue  # it ended (canceled) or moved since its commit: nothing to give
            started_run, attempt = started
            try:
                if worker.exited.is_set():  # gone since: its exit saw no such run
                    raise ConnectionError("the task process exited before it got the run")
                await self.pool.give(worker, version, started_run, attempt, True)
            except Exception as exc:  # noqa: BLE001 - the others are still given theirs
                await self._lost(worker, started_run, attempt.number, exc)

    async def _lost(self, worker: WorkerHandle, run: Run, attempt: int, exc: Exception) -> None:
        """A started run its process never got goes back to its queue (an interruption)."""
        worker.executing.discard(run.id)
        self.pool.by_run.pop(run.id, None)
        report("warning", "a handed-over run did not reach its process", run=run.id,
               error=repr(exc))
        await self.pool.engine.worker_lost(run.id, attempt, "The task process never got this "
                                           "run", interrupted=True)
        self.pool.wake()
