"""What a normal stop (SIGTERM or SIGINT: `trigger-local down`, `dev`'s Ctrl-C) does with the
executor's task processes (docs/architecture.md, "Crash safety").

- Executing attempts get `shutdown_grace_s` to finish; the processes still running then are
  killed and their runs go back to their queue without using an attempt (`INTERRUPTED`).
- A waiting run keeps its place. Its held process is checkpointed when the executor can (CRIU,
  `docker checkpoint`); otherwise, or when that fails, the process is left running and the
  next daemon adopts it, exactly as after kill -9. From the start of the stop a held process's
  polls are answered 503 with `Connection: close` (api/worker.py): it retries with backoff
  and holds no TCP connection in between, which CRIU could not checkpoint.
- Runs already checkpointed stay checkpointed.
- A shared process (executors/sharing.py) is never checkpointed: if it only holds waiting runs
  it is left running for the next daemon; if a run of it still executes after the grace, it is
  killed and every run it held (the waiting ones too) is interrupted.
- A process whose start ends during the stop (a shared process's successor, whose start nobody
  awaits) is killed as soon as it is up (executors/pool.py `start_worker`): the kill loop below
  may have passed it, and it would poll for the gone daemon until its orphan timeout.
- `kill_waiting` (`trigger-local down --kill-waiting`, which sends SIGUSR1): held processes are
  killed too; their runs are interrupted and start again from the top on the next daemon.
- A run whose interruption cannot be written (a full disk) does not keep the other processes
  from being stopped: the next daemon finds its process gone and interrupts it then.
"""

from __future__ import annotations

import asyncio
import time

import structlog

from ..engine.hub import run_key
from .base import WorkerPool
from .workers import BUSY, HELD, WorkerHandle

log = structlog.get_logger("executor")

#: a held process polls again within 1 s (its backoff cap): that long may pass before it lets go
#: of its connection, and a dump can still meet it reconnecting, hence a second try
STOP_SOCKET_WAIT_S = 2.0
STOP_FREEZE_TRIES = 2
EXIT_WAIT_S = 5.0


async def stop_processes(executor: WorkerPool, grace_s: float) -> None:
    executor.begin_stop()
    executor.engine.stopping = True
    for worker in executor.workers.values():
        if worker.state == HELD and worker.run_id:
            executor.engine.hub.wake(run_key(worker.run_id))  # a poll under way answers 503 now
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and any(w.state == BUSY for w in executor.workers.values()):
        await asyncio.sleep(0.05)
    # a dump under way decides first whether its process is still there
    freezing = [w.freezing for w in executor.workers.values() if w.freezing is not None]
    if freezing:
        await asyncio.wait(freezing)
    killed: list[WorkerHandle] = []
    for worker in list(executor.workers.values()):
        if _waits(worker) and not executor.kill_waiting:
            if not await _checkpoint(executor, worker):
                _leave_running(worker)
            continue
        held = dict(worker.runs) if worker.shared else (
            {worker.run_id: worker.attempt} if worker.run_id and worker.attempt else {})
        waiting = _waits(worker)
        worker.kill()
        killed.append(worker)
        for run_id, attempt in held.items():
            reason = ("The daemon shut down and killed the waiting process (down --kill-waiting)"
                      if waiting else "The daemon shut down")
            try:
                await executor.engine.worker_lost(run_id, attempt, reason, interrupted=True)
            except Exception as exc:  # noqa: BLE001 - a full disk: the next process still stops
                log.warning("could not put an interrupted run back in its queue; the next "
                            "daemon does when it finds its process gone", run=run_id,
                            error=str(exc))
    for worker in killed:
        try:
            await asyncio.wait_for(worker.exited.wait(), EXIT_WAIT_S)
        except TimeoutError:
            log.warning("task process did not exit", worker=worker.id, pid=worker.pid)
    pending = executor.jobs()
    if pending:
        await asyncio.wait(pending, timeout=EXIT_WAIT_S)


def _waits(worker: WorkerHandle) -> bool:
    """Holds a waiting run (or one whose wait completed but that was not resumed yet), and no
    executing one."""
    holds = bool(worker.runs) if worker.shared else worker.run_id is not None
    return worker.state == HELD and holds and not worker.exited.is_set()


async def _checkpoint(executor: WorkerPool, worker: WorkerHandle) -> bool:
    if not executor.can_checkpoint() or worker.shared or worker.run_id is None \
            or worker.attempt is None:
        return False
    run_id, attempt = worker.run_id, worker.attempt
    for _ in range(STOP_FREEZE_TRIES):
        if await executor.freeze(worker, run_id, attempt, STOP_SOCKET_WAIT_S):
            await executor.forget_frozen(worker, run_id)
            log.info("checkpointed a waiting run at stop", run=run_id, worker=worker.id)
            return True
        worker.freezing = None
        if worker.exited.is_set():
            break
    return False


def _leave_running(worker: WorkerHandle) -> None:
    """Not ours to stop: its run keeps its place, and the next daemon adopts it by pid."""
    if worker.shared:  # its runs are in `runs`; `run_id` stays None
        log.info("leaving a shared task process running (it holds only waiting runs); the "
                 "next daemon adopts it", waiting=len(worker.runs), runs=sorted(worker.runs),
                 worker=worker.id, pid=worker.pid)
    else:
        log.info("leaving a waiting run's task process running; the next daemon adopts it",
                 run=worker.run_id, worker=worker.id, pid=worker.pid)
    worker.released = True
    if worker.monitor is not None:
        worker.monitor.cancel()  # its exit, if any, is the next daemon's to see
