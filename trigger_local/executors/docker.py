"""The docker executor: the pool (executors/pool.py) with workers started as containers from the
version's image, checkpointed with `docker checkpoint` (executors/docker_checkpoints.py).

A container runs the process executor's runtime (`python -m trigger_local.runtime work`,
long-polling the daemon over the host network). Runs of async tasks share a warm container per
version and machine (executors/sharing.py); a sync or `isolated=True` task's run has a
container of its own, which retires after it. Containers are labelled with their worker id, so
a restarted daemon adopts the ones still running. A container finds a daemon restarted on
another port as a task process does (the runtime's `TRIGGER_LOCAL_DAEMON_INFO`): the daemon's
url is in a directory of the home mounted read-only into every container, rewritten at each
start (`DAEMON_INFO_MOUNT`).

The engine may be absent or stop at any time: the spawner then reports a problem (the pool has
no capacity, runs stay QUEUED), says why in `describe()`, and checks again every few seconds. A
waiting run's container is checkpointed and stopped when the engine can; a stopped container
that has a checkpoint is neither a crash nor removed."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import structlog
from docker.errors import DockerException, ImageNotFound, NotFound

from ..config import DAEMON_INFO_ENV, DaemonSettings
from ..engine import Engine
from ..errors import SpawnRefused, SpawnUnavailable
from ..machines import machine_for
from ..store.models import EXECUTING, WAITING, Run, Version
from ..supervise import Loop, Supervisor
from .adoption import adopt_shared_run, is_shared
from .assignments import worker_env
from .base import CheckpointSupport, WorkerPool
from .container_exits import watch_container
from .containers import (
    APP_DIR,
    IMAGE_ENV_KEY,
    LABEL_HOME,
    LABEL_WORKER,
    SETUP_HINT,
    ContainerHandle,
    connect,
    container_options,
    engine_problem,
)
from .docker_checkpoints import DockerCheckpointer
from .pool import PoolExecutor
from .workers import BUSY, HELD, IDLE, WorkerHandle, logs_dir

log = structlog.get_logger("executor")
ENGINE_CHECK_DOWN_S = 1.0  # how soon a missing engine is noticed coming back
ENGINE_CHECK_UP_S = 5.0
#: where a container sees its worker's freeze directory (the done file of the freeze handshake)
FREEZE_MOUNT = "/run/trigger-local/freeze"
#: where a container sees the directory that holds the daemon's url (`daemon.json`, as the home's
#: is for a task process): a directory, so that the file replaced by a restarted daemon is seen
DAEMON_INFO_MOUNT = "/run/trigger-local/daemon"
EngineCheck = Callable[[Any], Awaitable[None]]


class ContainerSpawner:
    """Starts task containers on the Docker engine; a container of an exclusive run retires
    after its attempt."""

    name = "docker"
    reuses_exclusive = False

    def __init__(self, engine: Engine, settings: DaemonSettings, secret_key: str,
                 wake_dispatcher: Callable[[], None]) -> None:
        self.engine = engine
        self.settings = settings
        self.secret_key = secret_key
        self._wake = wake_dispatcher
        self.logs_dir = logs_dir(settings.home)
        self.why_not: str | None = "the Docker engine was not checked yet"
        self._client: Any = None
        self._watcher: Loop | None = None
        self._on_answer: list[EngineCheck] = []

    @property
    def client(self) -> Any:
        """The docker SDK client (None until the engine first answered)."""
        return self._client

    def when_engine_answers(self, check: EngineCheck) -> None:
        self._on_answer.append(check)

    # -- availability ---------------------------------------------------------------------------
    def problem(self) -> str | None:
        return self.why_not

    def boot_limit(self) -> None:
        return None

    def describe(self, pool: WorkerPool) -> dict[str, Any]:
        return {"containers": len(pool.workers), "available": self.why_not is None,
                "problem": self.why_not, "fix": SETUP_HINT if self.why_not else None}

    async def _check_engine(self) -> None:
        problem = await asyncio.to_thread(engine_problem)
        if problem is None and self._client is None:
            self._client = await asyncio.to_thread(connect)
        if problem is None:
            for check in self._on_answer:
                await check(self._client)
        if problem != self.why_not:
            say = log.info if problem is None else log.warning
            say("docker engine", problem=problem or "available")
            if problem is None:
                self._wake()
        self.why_not = problem

    async def _watch_engine(self) -> None:
        """One round of the engine watch (a supervised loop: a failed check is retried)."""
        await asyncio.sleep(ENGINE_CHECK_DOWN_S if self.why_not else ENGINE_CHECK_UP_S)
        await self._check_engine()

    def engine_lost(self, exc: Exception) -> None:
        self.why_not = f"the Docker engine failed: {type(exc).__name__}: {exc}"
        log.warning("docker engine failed", error=str(exc))

    # -- starting workers -----------------------------------------------------------------------
    def refuses(self, run: Run, version: Version | None) -> str | None:
        if version is None or not version.env.get(IMAGE_ENV_KEY):
            return (f"Version {run.version_id} has no image: the docker executor runs deployed "
                    "versions; run `trigger-local deploy` in the project")
        return None

    def fits(self, worker: WorkerHandle, run: Run) -> bool:
        """A shared container serves runs of its own machine only."""
        return isinstance(worker, ContainerHandle) \
            and worker.machine == machine_for(run.machine).name

    def new_worker(self, worker_id: str, log_path: Path, version: Version, run: Run,
                   shared: bool) -> ContainerHandle:
        return ContainerHandle(id=worker_id, version_id=version.id, pid=None, log_path=log_path,
                               machine=machine_for(run.machine).name, shared=shared,
                               booting=shared)

    async def _container_env(self, version: Version, worker_id: str) -> dict[str, str]:
        # the project's env vars (envvars API), then the version's; ours win on a clash
        env = {**await self.engine.process_env(version.project),
               **{k: v for k, v in version.env.items() if k != IMAGE_ENV_KEY}}
        orphan = os.environ.get("TRIGGER_LOCAL_ORPHAN_TIMEOUT_S")
        if orphan:
            env["TRIGGER_LOCAL_ORPHAN_TIMEOUT_S"] = orphan
        return env | worker_env(self.settings.url, self.secret_key, worker_id, version, APP_DIR,
                                payload_limit=self.settings.payload_limit_bytes) \
            | {DAEMON_INFO_ENV: f"{DAEMON_INFO_MOUNT}/daemon.json"}

    async def launch(self, worker: WorkerHandle, version: Version,
                     enlist: Callable[[WorkerHandle], None]) -> None:
        assert isinstance(worker, ContainerHandle)
        image = version.env[IMAGE_ENV_KEY]
        enlist(worker)  # known before it starts: its first poll may come before `run` returns
        options = container_options(machine_for(worker.machine),
                                    await self._container_env(version, worker.id),
                                    {LABEL_WORKER: worker.id, LABEL_HOME: str(self.settings.home)})
        # The freeze handshake's done file reaches the runtime through this mount (runc carries
        # the bind mount across a checkpoint and restore).
        freeze_dir = self.freeze_dir(worker.id)
        freeze_dir.mkdir(parents=True, exist_ok=True)
        options["volumes"] = {str(freeze_dir): {"bind": FREEZE_MOUNT, "mode": "rw"},
                              str(self.daemon_info_dir): {"bind": DAEMON_INFO_MOUNT, "mode": "ro"}}
        try:
            worker.container = await asyncio.to_thread(self._client.containers.run, image,
                                                       name=worker.id, **options)
        except ImageNotFound as exc:
            raise SpawnRefused(f"Image {image} of version {version.id} is gone from the Docker "
                               "engine: run `trigger-local deploy` again") from exc
        except DockerException as exc:
            self.engine_lost(exc)
            raise SpawnUnavailable(str(exc)) from exc
        log.debug("task container started", worker=worker.id, image=image, machine=worker.machine)

    def watch(self, pool: WorkerPool, worker: WorkerHandle) -> Awaitable[None]:
        assert isinstance(worker, ContainerHandle)
        return watch_container(pool, worker, self)

    # -- checkpoints (executors/docker_checkpoints.py does the engine part) ----------------------
    def freeze_dir(self, worker_id: str) -> Path:
        return self.settings.home / "freeze" / worker_id

    def done_file(self, worker_id: str, run_id: str, attempt: int) -> tuple[Path, str]:
        name = f"{run_id}.{attempt}"
        return self.freeze_dir(worker_id) / name, f"{FREEZE_MOUNT}/{name}"

    def handle_for_restored(self, run: Run, worker_id: str, container: Any) -> ContainerHandle:
        return ContainerHandle(id=worker_id, version_id=run.version_id or "", pid=None,
                               container=container, log_path=self.logs_dir / f"{worker_id}.log",
                               state=BUSY, run_id=run.id, attempt=run.attempt_count,
                               machine=run.machine or "small-1x")

    def discard_container(self, worker_id: str) -> None:
        """Remove a stopped (checkpointed) container that will not run again, keeping its output.
        Blocking: call from a thread."""
        try:
            container = self._client.containers.get(worker_id)
            with (self.logs_dir / f"{worker_id}.log").open("ab") as out:
                out.write(container.logs(stdout=True, stderr=True))
            container.remove(force=True)
        except (NotFound, OSError):
            pass
        except Exception as exc:  # the engine went away: the container stays until removed by hand
            log.warning("could not remove a checkpointed container", worker=worker_id,
                        error=str(exc)[:200])
        shutil.rmtree(self.freeze_dir(worker_id), ignore_errors=True)

    # -- restart and shutdown ---------------------------------------------------------------------
    @property
    def daemon_info_dir(self) -> Path:
        return self.settings.home / "container-daemon"

    def publish_url(self) -> None:
        """Where this daemon listens, for the containers (those a previous daemon left running
        too): only the url, not the home's daemon.json — a container sees nothing else of the
        home. Replaced in one step: a reader never sees half of it."""
        folder = self.daemon_info_dir
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o755)  # the container's user may not be the daemon's
        tmp = folder / f".daemon.json.{os.getpid()}"
        tmp.write_text(json.dumps({"url": self.settings.url}))
        tmp.chmod(0o644)
        tmp.replace(folder / "daemon.json")

    async def start(self) -> None:
        self.publish_url()
        await self._check_engine()

    async def adopt(self, pool: WorkerPool) -> None:
        """Adopt the task containers a previous daemon left running; interrupt runs whose
        container is gone. Then watch the engine."""
        engine = self.engine
        runs = {r.id: r for r in await engine.runs_on_workers()}
        for record in await engine.queries.workers.all():
            container = None
            if self.why_not is None:
                container = await asyncio.to_thread(self._find, record.id)
            if container is None or pool.is_frozen(record.id):
                # a checkpointed container (stopped, killed before it was forgotten) waits for its
                # restore
                await engine.forget_worker(record.id)
                continue
            worker = ContainerHandle(id=record.id, version_id=record.version_id, pid=None,
                                     container=container, state=IDLE,
                                     log_path=self.logs_dir / f"{record.id}.log")
            held = [r for r in runs.values()
                    if r.worker_id == record.id and r.status in (EXECUTING, WAITING)]
            worker.shared = await is_shared(pool, record.version_id, held)
            for run in held:
                worker.machine = run.machine or "small-1x"
                pool.by_run[run.id] = worker.id
                if worker.shared:
                    adopt_shared_run(pool.sharing, worker, run)
                else:
                    worker.state = BUSY if run.status == EXECUTING else HELD
                    worker.run_id, worker.attempt = run.id, run.attempt_count
                await engine.records.adopted(run.id, record.id)
            pool.workers[record.id] = worker
            pool.watch(worker)
            log.info("adopted task container", worker=record.id, state=worker.state)
        for run in runs.values():
            if run.status == "DEQUEUED":
                await engine.requeue(run, "daemon restarted before the run started")
            elif run.worker_id not in pool.workers and run.status in (EXECUTING, WAITING) \
                    and pool.checkpoint_of(run) is None:
                await engine.records.resume_by_replay(run.id, run.attempt_count, "The daemon "
                                                      "restarted; the task container was gone")
        self._watcher = pool.supervisor.start("docker-engine", self._watch_engine)

    def _find(self, worker_id: str) -> Any:
        try:
            container = self._client.containers.get(worker_id)
        except (NotFound, DockerException):
            return None
        # An exited one is adopted too: its exit code (an OOM kill, say) still belongs to its run.
        labels = container.labels or {}
        return container if labels.get(LABEL_HOME) == str(self.settings.home) else None

    def close(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
        if self._client is not None:
            self._client.close()


def docker_executor(engine: Engine, settings: DaemonSettings, secret_key: str,
                    wake_dispatcher: Callable[[], None], *,
                    supervisor: Supervisor | None = None) -> PoolExecutor:
    """The pool of task containers, checkpointed with `docker checkpoint`."""
    spawner = ContainerSpawner(engine, settings, secret_key, wake_dispatcher)

    def checkpointer(support: CheckpointSupport) -> DockerCheckpointer:
        return DockerCheckpointer(support, spawner)

    return PoolExecutor(engine, settings, secret_key, wake_dispatcher, spawner, checkpointer,
                        supervisor=supervisor)
