"""At start, the process executor adopts the task processes a previous daemon left running
(docs/architecture.md, "Crash safety"), and interrupts the runs whose process is gone."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import structlog

from ..engine import Engine
from ..store.models import DEQUEUED, EXECUTING, QUEUED, WAITING, Run, Version
from .base import Checkpoints
from .sharing import SharedRuns
from .workers import BUSY, HELD, IDLE, WorkerHandle, pid_is_worker

log = structlog.get_logger("executor")
_HELD_STATUSES = (EXECUTING, WAITING, QUEUED, DEQUEUED)


class Adopter(Protocol):
    """The process executor as adoption sees it."""

    engine: Engine
    logs_dir: Path
    workers: dict[str, WorkerHandle]
    _by_run: dict[str, str]
    sharing: SharedRuns

    @property
    def checkpointer(self) -> Checkpoints: ...

    def _watch(self, worker: WorkerHandle) -> None: ...

    async def _version(self, version_id: str) -> Version | None: ...


async def adopt(executor: Adopter) -> None:
    engine = executor.engine
    runs = {r.id: r for r in await engine.runs_on_workers()}
    for record in await engine.queries.workers.all():
        if not record.pid or not pid_is_worker(record.pid, record.id):
            await engine.forget_worker(record.id)
            continue
        worker = WorkerHandle(id=record.id, version_id=record.version_id, pid=record.pid,
                              log_path=executor.logs_dir / f"{record.id}.log", state=IDLE)
        # QUEUED/DEQUEUED with a worker: held, its wait completed, not resumed yet
        held = [r for r in runs.values() if r.worker_id == record.id and r.status in _HELD_STATUSES]
        worker.shared = await is_shared(executor, record.version_id, held)
        for run in held:
            executor._by_run[run.id] = worker.id
            if worker.shared:
                adopt_shared_run(executor.sharing, worker, run)
            else:
                worker.state = BUSY if run.status == EXECUTING else HELD
                worker.run_id, worker.attempt = run.id, run.attempt_count
            await engine.records.adopted(run.id, record.id)
        executor.workers[record.id] = worker
        executor._watch(worker)
        log.info("adopted task process", worker=record.id, pid=record.pid, state=worker.state,
                 runs=len(worker.runs) if worker.shared else int(worker.run_id is not None))
    for run in runs.values():
        owner = executor.workers.get(run.worker_id or "")
        if run.status == DEQUEUED:
            await engine.requeue(run, "daemon restarted before the run started")
        elif owner is None and run.status in (EXECUTING, WAITING) \
                and executor.checkpointer.checkpoint_of(run) is None:
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
    reconcile = next((m for m in worker.messages if m.get("type") == "reconcile"), None)
    if reconcile is None:
        sharing.send(worker, {"type": "reconcile", "runs": {run.id: run.attempt_count}})
    else:
        reconcile["runs"][run.id] = run.attempt_count


async def is_shared(executor: Adopter, version_id: str, runs: list[Run]) -> bool:
    """An adopted process is shared if a run it holds is of a shared task."""
    version = await executor._version(version_id)
    return version is not None and any(
        (task := version.task(r.task_id)) is not None and task.shared for r in runs)
