"""A task process's exit: when its process ends (a crash, a kill, a retirement), the runs it
held are failed as crashed (and retried per their policy) or, for a process adopted from a
previous daemon whose exit status is unknown, interrupted."""

from __future__ import annotations

import structlog

from .assignments import lose_attempt, spool_path
from .base import WorkerPool
from .sharing import SHARED_NOTE
from .sockets import is_child, reap
from .workers import WorkerHandle, describe_exit, watch_pid

log = structlog.get_logger("executor")


async def watch_exit(pool: WorkerPool, worker: WorkerHandle) -> None:
    """Wait for `worker`'s process to exit, then release the runs it held."""
    if worker.proc is not None:
        worker.exit_code = await worker.proc.wait()
    elif worker.pid is not None:
        # a restored process is our child (criu restore --restore-sibling): reap it, so that
        # no zombie keeps its pid (a later restore needs it) and its exit code is known
        ours = is_child(worker.pid)
        await watch_pid(worker.pid)
        if ours:
            worker.exit_code = await reap(worker.pid)
    worker.exited.set()
    if worker.freezing is not None and await worker.freezing:
        return  # CRIU dumped it: the process ended on purpose and the run is suspended
    pool.workers.pop(worker.id, None)
    try:
        # retried (a full disk): a run whose process is gone must not stay EXECUTING
        await pool.supervisor.retry_until_done(
            f"releasing the runs of task process {worker.id}", lambda: _forget(pool, worker),
            give_up=lambda: pool.stopping)
    finally:
        pool.wake()


async def _forget(pool: WorkerPool, worker: WorkerHandle) -> None:
    """The process has exited: drop its row and fail or interrupt the attempts it held
    (idempotent: retried on a full disk)."""
    await pool.engine.forget_worker(worker.id)
    held = dict(worker.runs) if worker.shared else (
        {worker.run_id: worker.attempt} if worker.run_id and worker.attempt else {})
    if not held and not pool.stopping:
        spool_path(worker.log_path).unlink(missing_ok=True)  # its last run ended: no lines due
    if not held or pool.stopping:
        return
    reason = describe_exit(worker.exit_code, worker.log_path)
    log.warning("task process exited during a run", worker=worker.id, runs=list(held),
                code=worker.exit_code, adopted=worker.proc is None)
    # An adopted process (from before a daemon restart) is not our child: its exit
    # status is unknown, so the attempt is not held against the run.
    unknown = worker.proc is None and worker.exit_code is None
    for n, (run_id, attempt) in enumerate(held.items(), 1):
        await lose_attempt(pool.engine, worker.log_path, run_id, attempt,
                           reason + (SHARED_NOTE if worker.shared else ""),
                           interrupted=unknown, last=n == len(held))
        pool.by_run.pop(run_id, None)
        worker.runs.pop(run_id, None)
