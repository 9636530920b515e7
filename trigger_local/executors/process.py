"""The process executor: the pool (executors/pool.py) with task processes started locally as
`python -m trigger_local.runtime work`, checkpointed with CRIU (executors/checkpoints.py).

A process starts in its own session with its output to a file: it outlives a daemon killed
with -9 and the next daemon adopts it (executors/adoption.py). A new process spends its first
few hundred milliseconds importing (CPU-bound), so only `spawn_concurrency` boot at once.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..config import DAEMON_INFO_ENV, DaemonSettings
from ..engine import Engine
from ..errors import SpawnRefused
from ..home import user_umask
from ..limits import spawn_failure
from ..store.models import Run, Version
from ..supervise import Supervisor
from .adoption import adopt
from .assignments import worker_env
from .base import WorkerPool
from .checkpoints import Checkpointer
from .exits import watch_exit
from .pool import PoolExecutor
from .workers import WorkerHandle


class ProcessSpawner:
    """Starts task processes on this machine; a process of an exclusive run is reused."""

    name = "process"
    reuses_exclusive = True

    def __init__(self, engine: Engine, settings: DaemonSettings, secret_key: str) -> None:
        self.engine = engine
        self.settings = settings
        self.secret_key = secret_key
        # read once: `os.cpu_count()` reads /sys each call (~7 µs), and the pool's `capacity`
        # asks `boot_limit` about once per run (issue #13)
        self._cpus = os.cpu_count() or 2

    def problem(self) -> str | None:
        return None

    def boot_limit(self) -> int:
        return self.settings.spawn_concurrency or max(2, self._cpus)

    def refuses(self, run: Run, version: Version | None) -> str | None:
        if version is None:
            return f"Version {run.version_id} of task {run.task_id} is gone"
        return None

    def fits(self, worker: WorkerHandle, run: Run) -> bool:
        return True

    def new_worker(self, worker_id: str, log_path: Path, version: Version, run: Run,
                   shared: bool) -> WorkerHandle:
        return WorkerHandle(id=worker_id, version_id=version.id, pid=None, log_path=log_path,
                            booting=True, shared=shared)

    async def launch(self, worker: WorkerHandle, version: Version,
                     enlist: Callable[[WorkerHandle], None]) -> None:
        # the project's env vars (envvars API) apply to processes started from now on; ours win
        env = {**os.environ, **await self.engine.process_env(version.project), **version.env,
               **worker_env(self.settings.url, self.secret_key, worker.id, version,
                            version.project_dir, worker.log_path,
                            payload_limit=self.settings.payload_limit_bytes),
               "TRIGGER_LOCAL_UMASK": f"{user_umask():03o}",
               # a process a stopped daemon leaves running finds the next one there, also on
               # another port (runtime/__main__.py)
               DAEMON_INFO_ENV: str(self.settings.home / "daemon.json")}
        python = version.python or sys.executable
        with worker.log_path.open("ab") as out:
            try:
                proc = await asyncio.create_subprocess_exec(
                    python, "-m", "trigger_local.runtime", "work", cwd=version.project_dir,
                    env=env, stdin=asyncio.subprocess.DEVNULL, stdout=out,
                    stderr=asyncio.subprocess.STDOUT, start_new_session=True)
            except OSError as exc:  # the run fails with why, not the dispatcher's round
                reason = spawn_failure(exc, python, version.project_dir)
                if reason is None:
                    raise
                raise SpawnRefused(reason) from exc
        worker.proc, worker.pid = proc, proc.pid
        enlist(worker)

    async def watch(self, pool: WorkerPool, worker: WorkerHandle) -> None:
        await watch_exit(pool, worker)

    def done_file(self, worker_id: str, run_id: str, attempt: int) -> tuple[Path, str]:
        done = self.settings.home / "freeze" / f"{run_id}.{attempt}"
        return done, str(done)

    async def start(self) -> None:
        pass

    async def adopt(self, pool: WorkerPool) -> None:
        await adopt(pool)

    def close(self) -> None:
        pass

    def describe(self, pool: WorkerPool) -> dict[str, Any]:
        return {}


def process_executor(engine: Engine, settings: DaemonSettings, secret_key: str,
                     wake_dispatcher: Callable[[], None], *,
                     supervisor: Supervisor | None = None) -> PoolExecutor:
    """The pool of local task processes, checkpointed with CRIU."""
    return PoolExecutor(engine, settings, secret_key, wake_dispatcher,
                        ProcessSpawner(engine, settings, secret_key), Checkpointer,
                        supervisor=supervisor)
