"""Warm reuse: which idle worker takes a run, which one makes room, and when one retires.
Pure decisions over the pool's workers (executors/pool.py acts on them)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from ..config import DaemonSettings
from .base import Spawner
from .workers import BUSY, IDLE, WorkerHandle


def capacity(workers: Iterable[WorkerHandle], room: Callable[[WorkerHandle], int],
             spawner: Spawner, processes_free: int) -> int:
    """The pool's `capacity` (executors/pool.py): the room of warm workers (`room` of a shared
    one, an idle exclusive one that is reused), plus new workers while few boot — none while a
    shared one boots (issue #13)."""
    idle = 0
    limit = spawner.boot_limit()
    for w in workers:
        if w.shared:
            idle += room(w)
        elif spawner.reuses_exclusive:
            idle += w.state == IDLE and w.mailbox.empty()
    return idle + (processes_free if limit is None
                   else min(processes_free, max(0, limit - boots(workers, limit))))


def boots(workers: Iterable[WorkerHandle], limit: int | None) -> int:
    """Boots under way, against the boot limit `limit`: a shared process's counts as all of it
    (none beside it, issue #13)."""
    return sum((limit or 1) if w.shared and w.booting else int(w.booting) for w in workers)


def take_idle(workers: Iterable[WorkerHandle], version_id: str) -> WorkerHandle | None:
    """An idle exclusive worker of `version_id`, marked busy: the dispatcher starts runs
    concurrently, and another start must not take it too."""
    for worker in workers:
        if worker.version_id == version_id and worker.state == IDLE and not worker.shared \
                and worker.mailbox.empty():
            worker.state = BUSY
            return worker
    return None


def evictable(workers: Iterable[WorkerHandle], current: set[str]) -> WorkerHandle | None:
    """The idle worker to stop to make room: one of a version no project runs any more first."""
    idle = [w for w in workers if w.state == IDLE and w.mailbox.empty() and not w.runs]
    idle.sort(key=lambda w: w.version_id in current)
    return idle[0] if idle else None


def should_retire(worker: WorkerHandle, workers: Iterable[WorkerHandle],
                  settings: DaemonSettings, current: set[str], reuses_exclusive: bool) -> bool:
    """`worker` holds no run: should it leave the pool?"""
    if not worker.shared and not reuses_exclusive:
        return worker.runs_done >= 1  # one attempt per worker (a container)
    if worker.runs_done >= settings.warm_runs_per_process:
        return True
    if worker.version_id not in current:
        return True  # its project has a newer version
    # Only a worker that found no work for a whole long-poll counts as surplus: in a burst,
    # workers are idle for a moment between runs, and retiring them then means paying for a
    # new one (imports and all) a moment later.
    if worker.idle_polls == 0:
        return False
    idle = sum(1 for w in workers
               if w.version_id == worker.version_id and w.state == IDLE and w is not worker)
    return idle >= settings.warm_idle_per_version
