"""At start, the process executor's pool adopts the task processes a previous daemon left running
(docs/architecture.md, "Crash safety"), and interrupts the runs whose process is gone."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import structlog

from .. import protocol
from ..store.models import CK_ACTIVE, CK_PENDING, DEQUEUED, EXECUTING, QUEUED, WAITING, Run
from .assignments import spool_path
from .base import WorkerPool
from .sharing import SharedRuns
from .workers import BUSY, HELD, IDLE, WorkerHandle, pid_is_worker

log = structlog.get_logger("executor")
_HELD_STATUSES = (EXECUTING, WAITING, QUEUED, DEQUEUED)


async def adopt(pool: WorkerPool) -> None:
    engine = pool.engine
    runs = {r.id: r for r in await engine.runs_on_workers()}
    for record in await engine.queries.workers.all():
        if not record.pid or not pid_is_worker(record.pid, record.id):
            await engine.forget_worker(record.id)
            if not await may_be_restored(pool, record.id, runs.values()):
                # it died while no daemon watched: no line of its spool is due any more
                spool_path(pool.logs_dir / f"{record.id}.log").unlink(missing_ok=True)
            continue
        worker = WorkerHandle(id=record.id, version_id=record.version_id, pid=record.pid,
                              log_path=pool.logs_dir / f"{record.id}.log", state=IDLE)
        # QUEUED/DEQUEUED with a worker: held, its wait completed, not resumed yet
        held = [r for r in runs.values() if r.worker_id == record.id and r.status in _HELD_STATUSES]
        worker.shared = await is_shared(pool, record.version_id, held)
        for run in held:
            pool.by_run[run.id] = worker.id
            if worker.shared:
                adopt_shared_run(pool.sharing, worker, run)
            else:
                worker.state = BUSY if run.status == EXECUTING else HELD
                worker.run_id, worker.attempt = run.id, run.attempt_count
            await engine.records.adopted(run.id, record.id)
        pool.workers[record.id] = worker
        pool.watch(worker)
        log.info("adopted task process", worker=record.id, pid=record.pid, state=worker.state,
                 runs=len(worker.runs) if worker.shared else int(worker.run_id is not None))
    for run in runs.values():
        owner = pool.workers.get(run.worker_id or "")
        if run.status == DEQUEUED:
            await engine.requeue(run, "daemon restarted before the run started")
        elif owner is None and run.status in (EXECUTING, WAITING) \
                and pool.checkpoint_of(run) is None:
            await engine.records.resume_by_replay(run.id, run.attempt_count, "The daemon "
                                                  "restarted; the task process was gone")


def adopt_shared_run(sharing: SharedRuns, worker: WorkerHandle, run: Run) -> None:
    """`run` is on the adopted shared process `worker`. The first run adopted queues the
    reconcile message: the last daemon may have died before the process got a run it was given,
    or word that a wait was over; the process says which of these runs it does not hold."""
    worker.runs[run.id] = run.attempt_count
    if run.status == EXECUTING:
        worker.executing.add(run.id)
    worker.state = BUSY if worker.executing else HELD
    reconcile = next((m for m in worker.messages if m.get("type") == protocol.RECONCILE), None)
    if reconcile is None:
        sharing.send(worker, protocol.reconcile({run.id: run.attempt_count}))
    else:
        reconcile["runs"][run.id] = run.attempt_count


async def is_shared(pool: WorkerPool, version_id: str, runs: list[Run]) -> bool:
    """An adopted process is shared if a run it holds is of a shared task."""
    version = await pool.version(version_id)
    return version is not None and any(
        (task := version.task(r.task_id)) is not None and task.shared for r in runs)


async def may_be_restored(pool: WorkerPool, worker_id: str, runs: Iterable[Run]) -> bool:
    """Whether a dump of the gone process `worker_id` exists or may: a checkpoint record that
    names it still pending or active, or the images of one of the runs it held still on disk.
    CRIU froze such a process rather than it dying: its spool is one of its open files, and its
    restore needs the file where it was (a daemon killed between a dump and its record leaves
    the process's row behind, gone like a dead one). Only a False lets its spool be removed."""
    checkpoints = pool.engine.queries.checkpoints
    if any(ck.worker_id == worker_id
           for ck in [*await checkpoints.pending(), *await checkpoints.active()]):
        return True
    for run in runs:
        if run.worker_id != worker_id:
            continue
        for ck in await checkpoints.for_run(run.id):
            if ck.worker_id == worker_id and (ck.status in (CK_PENDING, CK_ACTIVE)
                                              or Path(ck.path).exists()):
                return True
    return False
