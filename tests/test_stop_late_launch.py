"""A task process whose launch ends while the daemon stops is killed at once (executors/pool.py
`start_worker`): the stop's kill loop (executors/stopping.py) may have passed already, and the
process, given no run, would poll for a daemon that is gone until its orphan timeout — a stray
process after `trigger-local down`. A shared process's successor (executors/succession.py) is
such a launch: it starts beside a run's assignment and nobody waits for it. Checked with a real
task process on a real pool over a real SQLite engine; only the launch's start is held back
(the daemon's own read of the project's env vars before it, on a loaded store, or a container's
start is that slow)."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.engine_support import open_engine
from trigger_local.clock import FakeClock
from trigger_local.engine import TriggerRequest
from trigger_local.executors.pool import PoolExecutor
from trigger_local.executors.process import ProcessSpawner
from trigger_local.executors.workers import BUSY, WorkerHandle
from trigger_local.store.models import TaskDef, Version


class _HeldLaunch(ProcessSpawner):
    """Starts each process only once `go` is set, and records it."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.go = asyncio.Event()
        self.launched: list[WorkerHandle] = []

    async def launch(self, worker: WorkerHandle, version: Version,
                     enlist: Callable[[WorkerHandle], None]) -> None:
        await self.go.wait()
        await super().launch(worker, version, enlist)
        self.launched.append(worker)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


async def test_a_successor_launched_after_the_kill_loop_is_killed(tmp_path: Path) -> None:
    engine = await open_engine(tmp_path, FakeClock(1_700_000_000.0), warm_runs_per_process=100,
                               port=9, tasks=[TaskDef(task_id="t", queue="task/t")])
    spawner = _HeldLaunch(engine, engine.settings, "secret")
    pool = PoolExecutor(engine, engine.settings, "secret", lambda: None, spawner)
    (tmp_path / "proj").mkdir()
    try:
        assert engine.current_version is not None
        version = dataclasses.replace(engine.current_version, project_dir=str(tmp_path / "proj"))
        run = (await engine.trigger(TriggerRequest(task_id="t"))).run
        full = WorkerHandle(id="worker_full", version_id=version.id, pid=None,
                            log_path=tmp_path / "full.log", shared=True, state=BUSY)
        full.runs_done = 80  # past three quarters of its 100: its successor starts
        full.exited.set()
        pool.workers[full.id] = full
        pool.succession.after_assign(full, version, run)
        assert pool.succession.started == 1
        stop = asyncio.create_task(pool.shutdown(0.0))
        await asyncio.sleep(0.3)  # the kill loop has passed; the stop waits for its jobs
        assert not stop.done()
        spawner.go.set()
        await asyncio.wait_for(stop, 10)
        assert len(spawner.launched) == 1
        pid = spawner.launched[0].pid
        assert pid is not None
        for _ in range(50):
            if not _alive(pid):
                break
            await asyncio.sleep(0.1)
        assert not _alive(pid), "the successor's process outlived the stop"
    finally:
        for worker in spawner.launched:
            if worker.pid is not None and _alive(worker.pid):
                os.killpg(worker.pid, signal.SIGKILL)
        for task in pool._tasks:
            task.cancel()
        await engine.store.close()
