"""A shared process's successor (executors/succession.py) is a boot like any other: it starts
only while the boot limit has room (docs/configuration.md, `spawn_concurrency`: task processes
booting at once; none beside a booting shared process). Checked on a real pool over a real
SQLite engine, with a spawner that records its launches and starts no process."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.engine_support import open_engine
from trigger_local.clock import FakeClock
from trigger_local.engine import TriggerRequest
from trigger_local.executors.base import WorkerPool
from trigger_local.executors.pool import PoolExecutor
from trigger_local.executors.process import ProcessSpawner
from trigger_local.executors.workers import BUSY, WorkerHandle
from trigger_local.store.models import TaskDef, Version


class _Recorder(ProcessSpawner):
    """Enlists each worker it is asked to launch, and starts no process."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.launched: list[str] = []

    async def launch(self, worker: WorkerHandle, version: Version,
                     enlist: Callable[[WorkerHandle], None]) -> None:
        self.launched.append(worker.id)
        enlist(worker)

    async def watch(self, pool: WorkerPool, worker: WorkerHandle) -> None:
        await asyncio.Event().wait()


def _worker(worker_id: str, *, shared: bool, booting: bool = False) -> WorkerHandle:
    return WorkerHandle(id=worker_id, version_id="version_1", pid=None,
                        log_path=Path("/dev/null"), shared=shared, booting=booting)


async def test_a_successor_waits_for_the_boot_limit(tmp_path: Path) -> None:
    engine = await open_engine(tmp_path, FakeClock(1_700_000_000.0), spawn_concurrency=1,
                               warm_runs_per_process=100,
                               tasks=[TaskDef(task_id="t", queue="task/t")])
    spawner = _Recorder(engine, engine.settings, "secret")
    pool = PoolExecutor(engine, engine.settings, "secret", lambda: None, spawner)
    try:
        version = engine.current_version
        assert version is not None
        run = (await engine.trigger(TriggerRequest(task_id="t"))).run
        full = _worker("worker_full", shared=True)
        full.runs_done, full.state = 80, BUSY  # past three quarters of its 100
        booting = _worker("worker_booting", shared=False, booting=True)  # the one boot allowed
        pool.workers.update({full.id: full, booting.id: booting})
        pool.succession.after_assign(full, version, run)
        await asyncio.sleep(0)
        assert pool.succession.started == 0 and spawner.launched == []
        booting.booting = False  # it is up: the next run's assignment starts the successor
        pool.succession.after_assign(full, version, run)
        for _ in range(50):
            if spawner.launched:
                break
            await asyncio.sleep(0.01)
        assert pool.succession.started == 1 and len(spawner.launched) == 1
    finally:
        for task in pool._tasks:
            task.cancel()
        await engine.store.close()
