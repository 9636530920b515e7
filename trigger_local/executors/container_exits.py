"""A task container's exit: when it stops (a crash, an OOM kill, a retirement, the engine going
away), the runs it held are failed with its exit (and retried per their policy) or, when the
engine went away with it, interrupted. A container stopped by its checkpoint is neither."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Protocol

import structlog

from .base import WorkerPool
from .containers import ContainerHandle, describe_container_exit
from .sharing import SHARED_NOTE
from .workers import KILLED, log_tail

log = structlog.get_logger("executor")
CONTAINER_WAIT_S = 2.0  # one long-poll of the engine for a container's exit


class EngineWatch(Protocol):
    """The container spawner as a container's exit watch sees it."""

    def engine_lost(self, exc: Exception) -> None: ...

    def freeze_dir(self, worker_id: str) -> Path: ...


async def watch_container(pool: WorkerPool, worker: ContainerHandle, spawner: EngineWatch) -> None:
    stopped = await asyncio.to_thread(_wait, worker, spawner)
    if stopped and worker.freezing is not None and await worker.freezing:
        worker.exited.set()
        return  # stopped by its checkpoint: kept for the restore, the run is suspended
    code, oom = await asyncio.to_thread(_collect, worker, spawner) if stopped else (None, False)
    worker.exit_code = code
    worker.exited.set()
    pool.workers.pop(worker.id, None)
    try:
        await pool.engine.forget_worker(worker.id)
        held = dict(worker.runs) if worker.shared else (
            {worker.run_id: worker.attempt} if worker.run_id and worker.attempt else {})
        if held and not pool.stopping:
            await _release(pool, worker, held, code, oom)
    finally:
        pool.wake()


async def _release(pool: WorkerPool, worker: ContainerHandle, held: dict[str, int],
                   code: int | None, oom: bool) -> None:
    """The container stopped with runs on it: each is interrupted (the engine went away) or
    failed with the container's exit, and retried per its policy."""
    if code is None and worker.state != KILLED:
        # the engine went away with the container: not the task's fault
        gone = "The Docker engine stopped during the attempt"
        for run_id, attempt in held.items():
            await pool.engine.worker_lost(run_id, attempt, gone, interrupted=True)
        return
    reason = describe_container_exit(code, oom, worker.machine, log_tail(worker.log_path))
    log.warning("task container exited during a run", worker=worker.id, runs=list(held),
                code=code, oom=oom)
    error_name = "OutOfMemoryError" if oom else "TaskProcessExited"
    for run_id, attempt in held.items():
        await pool.engine.worker_lost(run_id, attempt,
                                      reason + (SHARED_NOTE if worker.shared else ""),
                                      error_name=error_name)


def _wait(worker: ContainerHandle, spawner: EngineWatch) -> bool:
    """Block until the container stops; False when the engine went away meanwhile, or when a
    stop left the container running (released: its watch is over, and the thread must end for
    the daemon to exit)."""
    while not worker.released:
        try:
            worker.container.wait(timeout=CONTAINER_WAIT_S)
            return True
        # DockerException, or requests' errors (a timeout, the engine gone)
        except Exception as exc:
            if "timed out" not in str(exc).lower():
                spawner.engine_lost(exc)
                return False
    return False


def _collect(worker: ContainerHandle, spawner: EngineWatch) -> tuple[int | None, bool]:
    """Keep a stopped container's output in the worker log and remove it.
    (exit code, OOM-killed); the code is None when the engine went away."""
    container = worker.container
    try:
        container.reload()
        state = container.attrs.get("State", {})
        code, oom = int(state.get("ExitCode", -1)), bool(state.get("OOMKilled"))
        with worker.log_path.open("ab") as out:
            out.write(container.logs(stdout=True, stderr=True))
        container.remove(force=True)
        shutil.rmtree(spawner.freeze_dir(worker.id), ignore_errors=True)
        return code, oom
    # DockerException, or requests' ConnectionError when the engine dies
    except Exception as exc:
        spawner.engine_lost(exc)
        return None, False
