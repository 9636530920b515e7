"""DockerExecutor: attempts run in containers from the version's image.

The ProcessExecutor's protocol with a container in place of a process (`python -m
trigger_local.runtime work`, long-polling the daemon over the host network). Runs of async tasks
share a warm container per version and machine (executors/sharing.py); a sync or `isolated=True`
task's run has a container of its own, which retires after it. Containers are labelled with
their worker id, so a restarted daemon adopts the ones still running.

The engine may be absent or stop at any time: the executor then reports no capacity (runs stay
QUEUED), says why in `describe()`, and checks again every few seconds. A waiting run's container
is checkpointed and stopped (executors/docker_checkpoints.py) when the engine can; a stopped
container that has a checkpoint is neither a crash nor removed."""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from pathlib import Path
from typing import Any

import structlog
from docker.errors import DockerException, ImageNotFound, NotFound

from ..config import DaemonSettings
from ..engine import Engine
from ..ids import new_id
from ..machines import machine_for
from ..store.models import EXECUTING, WAITING, Run, Version, Worker
from ..supervise import Loop, Supervisor
from .adoption import adopt_shared_run, is_shared
from .assignments import assignment, worker_env
from .containers import (
    APP_DIR,
    IMAGE_ENV_KEY,
    LABEL_HOME,
    LABEL_WORKER,
    SETUP_HINT,
    ContainerHandle,
    connect,
    container_options,
    describe_container_exit,
    engine_problem,
)
from .docker_checkpoints import DockerCheckpointer
from .process import ProcessExecutor
from .sharing import SHARED_NOTE
from .workers import BUSY, HELD, IDLE, KILLED, WorkerHandle, log_tail

log = structlog.get_logger("executor")
ENGINE_CHECK_DOWN_S = 1.0  # how soon a missing engine is noticed coming back
ENGINE_CHECK_UP_S = 5.0
#: where a container sees its worker's freeze directory (the done file of the freeze handshake)
FREEZE_MOUNT = "/run/trigger-local/freeze"
CONTAINER_WAIT_S = 2.0  # one long-poll of the engine for a container's exit


class DockerExecutor(ProcessExecutor):
    name = "docker"

    def __init__(self, engine: Engine, settings: DaemonSettings, secret_key: str,
                 wake_dispatcher: Any, *, supervisor: Supervisor | None = None) -> None:
        self.problem: str | None = "the Docker engine was not checked yet"
        self._client: Any = None
        self._watcher: Loop | None = None
        super().__init__(engine, settings, secret_key, wake_dispatcher, supervisor=supervisor)

    checkpointer: DockerCheckpointer

    def _make_checkpointer(self) -> DockerCheckpointer:
        return DockerCheckpointer(self)

    @property
    def client(self) -> Any:
        """The docker SDK client (None until the engine first answered)."""
        return self._client

    # -- availability ---------------------------------------------------------------------------
    def capacity(self) -> int:
        # an exclusive container retires after its single attempt: only shared ones have room
        if self.problem:
            return 0
        room = sum(self.sharing.room(w) for w in self.workers.values())
        return room + max(0, self.settings.max_processes - len(self.workers))

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "containers": len(self.workers),
                "available": self.problem is None, "problem": self.problem,
                "fix": SETUP_HINT if self.problem else None}

    async def _check_engine(self) -> None:
        problem = await asyncio.to_thread(engine_problem)
        if problem is None and self._client is None:
            self._client = await asyncio.to_thread(connect)
        if problem is None:
            await self.checkpointer.check(self._client)
        if problem != self.problem:
            say = log.info if problem is None else log.warning
            say("docker engine", problem=problem or "available")
            if problem is None:
                self._wake()
        self.problem = problem

    async def _watch_engine(self) -> None:
        """One round of the engine watch (a supervised loop: a failed check is retried)."""
        await asyncio.sleep(ENGINE_CHECK_DOWN_S if self.problem else ENGINE_CHECK_UP_S)
        await self._check_engine()

    def _engine_lost(self, exc: Exception) -> None:
        self.problem = f"the Docker engine failed: {type(exc).__name__}: {exc}"
        log.warning("docker engine failed", error=str(exc))

    # -- starting runs --------------------------------------------------------------------------
    def _should_retire(self, worker: WorkerHandle) -> bool:
        if worker.shared:
            return super()._should_retire(worker)
        return worker.runs_done >= 1  # one container per attempt

    async def assign(self, run: Run) -> bool:
        if self.problem:
            return False
        version = await self._version(run.version_id or "")
        image = version.env.get(IMAGE_ENV_KEY) if version else None
        if version is None or not image:
            await self.engine.system_failure(
                run, f"Version {run.version_id} has no image: the docker executor runs deployed "
                     "versions; run `trigger-local deploy` in the project")
            return True
        task = version.task(run.task_id)
        shared = task is not None and task.shared and self.settings.runs_per_process > 1
        worker = self._shared_container(version.id, run.machine) if shared else None
        if worker is not None:
            return await self._start_shared(worker, version, run)
        if len(self.workers) >= self.settings.max_processes:
            return False
        try:
            worker = await self._spawn_container(version, image, run.machine, shared=shared)
        except ImageNotFound:
            await self.engine.system_failure(
                run, f"Image {image} of version {version.id} is gone from the Docker engine: run "
                     "`trigger-local deploy` again")
            return True
        except DockerException as exc:
            self._engine_lost(exc)
            return False
        if shared:
            return await self._start_shared(worker, version, run)
        started = await self.engine.start_attempt(run, worker.id, worker.pid, self.name)
        if started is None:
            worker.kill()
            return True
        run, attempt = started
        worker.state, worker.run_id, worker.attempt = BUSY, run.id, attempt.number
        self._by_run[run.id] = worker.id
        records = await self.engine.records.for_attempt(run, attempt.number)  # replayed
        worker.mailbox.put_nowait(assignment(run, attempt, version, self.secret_key,
                                             self.settings.home, records))
        return True

    def _shared_container(self, version_id: str, machine: str | None) -> ContainerHandle | None:
        """A warm shared container of the version, of the run's machine, with room."""
        name = machine_for(machine).name
        fits = [w for w in self.workers.values()
                if isinstance(w, ContainerHandle) and w.machine == name]
        found = self.sharing.pick(fits, version_id)
        return found if isinstance(found, ContainerHandle) else None

    async def _start_shared(self, worker: WorkerHandle, version: Version, run: Run) -> bool:
        worker.executing.add(run.id)  # its place is taken now: runs start concurrently
        started = None
        try:
            started = await self.engine.start_attempt(run, worker.id, worker.pid, self.name)
        finally:
            if started is None:
                worker.executing.discard(run.id)
        if started is None:
            return True
        run, attempt = started
        self._by_run[run.id] = worker.id
        records = await self.engine.records.for_attempt(run, attempt.number)  # replayed
        self.sharing.assign(worker, run.id, attempt.number, assignment(
            run, attempt, version, self.secret_key, self.settings.home, records))
        return True

    async def _container_env(self, version: Version, worker_id: str) -> dict[str, str]:
        # the project's env vars (envvars API), then the version's; ours win on a clash
        env = {**await self.engine.process_env(version.project),
               **{k: v for k, v in version.env.items() if k != IMAGE_ENV_KEY}}
        orphan = os.environ.get("TRIGGER_LOCAL_ORPHAN_TIMEOUT_S")
        if orphan:
            env["TRIGGER_LOCAL_ORPHAN_TIMEOUT_S"] = orphan
        return env | worker_env(self.settings.url, self.secret_key, worker_id, version, APP_DIR)

    async def _spawn_container(self, version: Version, image: str, machine_name: str | None, *,
                               shared: bool = False) -> ContainerHandle:
        worker_id = new_id("worker")
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        machine = machine_for(machine_name)
        worker = ContainerHandle(id=worker_id, version_id=version.id, pid=None,
                                 log_path=self.logs_dir / f"{worker_id}.log", machine=machine.name,
                                 shared=shared, booting=shared)
        # Known before it starts: its first long-poll may arrive before `run` returns.
        self.workers[worker_id] = worker
        options = container_options(machine, await self._container_env(version, worker_id),
                                    {LABEL_WORKER: worker_id, LABEL_HOME: str(self.settings.home)})
        # The freeze handshake's done file reaches the runtime through this mount (runc carries
        # the bind mount across a checkpoint and restore).
        freeze_dir = self._freeze_dir(worker_id)
        freeze_dir.mkdir(parents=True, exist_ok=True)
        options["volumes"] = {str(freeze_dir): {"bind": FREEZE_MOUNT, "mode": "rw"}}
        try:
            worker.container = await asyncio.to_thread(self._client.containers.run, image,
                                                       name=worker_id, **options)
        except BaseException:
            self.workers.pop(worker_id, None)
            raise
        await self.engine.register_worker(Worker(id=worker_id, version_id=version.id, token="",
                                                 pid=None, started_at=time.time(),
                                                 executor=self.name))
        self._watch(worker)
        log.debug("task container started", worker=worker_id, image=image, machine=machine.name)
        return worker

    # -- container exits ------------------------------------------------------------------------
    async def _monitor(self, worker: WorkerHandle) -> None:
        assert isinstance(worker, ContainerHandle)
        stopped = await asyncio.to_thread(self._wait, worker)
        if stopped and worker.freezing is not None and await worker.freezing:
            worker.exited.set()
            return  # stopped by its checkpoint: kept for the restore, the run is suspended
        code, oom = await asyncio.to_thread(self._collect, worker) if stopped else (None, False)
        worker.exit_code = code
        worker.exited.set()
        self.workers.pop(worker.id, None)
        try:
            await self.engine.forget_worker(worker.id)
            held = dict(worker.runs) if worker.shared else (
                {worker.run_id: worker.attempt} if worker.run_id and worker.attempt else {})
            if held and not self._stopping:
                await self._release(worker, held, code, oom)
        finally:
            self._wake()

    async def _release(self, worker: ContainerHandle, held: dict[str, int], code: int | None,
                       oom: bool) -> None:
        """The container stopped with runs on it: each is interrupted (the engine went away) or
        failed with the container's exit, and retried per its policy."""
        if code is None and worker.state != KILLED:
            # the engine went away with the container: not the task's fault
            gone = "The Docker engine stopped during the attempt"
            for run_id, attempt in held.items():
                await self.engine.worker_lost(run_id, attempt, gone, interrupted=True)
            return
        reason = describe_container_exit(code, oom, worker.machine, log_tail(worker.log_path))
        log.warning("task container exited during a run", worker=worker.id, runs=list(held),
                    code=code, oom=oom)
        error_name = "OutOfMemoryError" if oom else "TaskProcessExited"
        for run_id, attempt in held.items():
            await self.engine.worker_lost(run_id, attempt,
                                          reason + (SHARED_NOTE if worker.shared else ""),
                                          error_name=error_name)

    def _wait(self, worker: ContainerHandle) -> bool:
        """Block until the container stops; False when the engine went away meanwhile, or when a
        stop left the container running (released: its watch is over, and the thread must end
        for the daemon to exit)."""
        while not worker.released:
            try:
                worker.container.wait(timeout=CONTAINER_WAIT_S)
                return True
            # DockerException, or requests' errors (a timeout, the engine gone)
            except Exception as exc:
                if "timed out" not in str(exc).lower():
                    self._engine_lost(exc)
                    return False
        return False

    def _collect(self, worker: ContainerHandle) -> tuple[int | None, bool]:
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
            shutil.rmtree(self._freeze_dir(worker.id), ignore_errors=True)
            return code, oom
        # DockerException, or requests' ConnectionError when the engine dies
        except Exception as exc:
            self._engine_lost(exc)
            return None, False

    # -- checkpoints (executors/docker_checkpoints.py does the engine part) ----------------------
    def _freeze_dir(self, worker_id: str) -> Path:
        return self.settings.home / "freeze" / worker_id

    def _done_file(self, worker_id: str, run_id: str, attempt: int) -> tuple[Path, str]:
        name = f"{run_id}.{attempt}"
        return self._freeze_dir(worker_id) / name, f"{FREEZE_MOUNT}/{name}"

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
        shutil.rmtree(self._freeze_dir(worker_id), ignore_errors=True)

    # -- restart and shutdown ---------------------------------------------------------------------
    async def start(self) -> None:
        """Adopt the task containers a previous daemon left running; interrupt runs whose
        container is gone."""
        await self._check_engine()
        await self.checkpointer.start()
        runs = {r.id: r for r in await self.engine.runs_on_workers()}
        for record in await self.engine.queries.workers.all():
            container = None
            if self.problem is None:
                container = await asyncio.to_thread(self._find, record.id)
            if container is None or record.id in self.checkpointer.by_worker:
                # a checkpointed container (stopped, killed before it was forgotten) waits for its
                # restore
                await self.engine.forget_worker(record.id)
                continue
            worker = ContainerHandle(id=record.id, version_id=record.version_id, pid=None,
                                     container=container, state=IDLE,
                                     log_path=self.logs_dir / f"{record.id}.log")
            held = [r for r in runs.values()
                    if r.worker_id == record.id and r.status in (EXECUTING, WAITING)]
            worker.shared = await is_shared(self, record.version_id, held)
            for run in held:
                worker.machine = run.machine or "small-1x"
                self._by_run[run.id] = worker.id
                if worker.shared:
                    adopt_shared_run(self.sharing, worker, run)
                else:
                    worker.state = BUSY if run.status == EXECUTING else HELD
                    worker.run_id, worker.attempt = run.id, run.attempt_count
                await self.engine.records.adopted(run.id, record.id)
            self.workers[record.id] = worker
            self._watch(worker)
            log.info("adopted task container", worker=record.id, state=worker.state)
        for run in runs.values():
            if run.status == "DEQUEUED":
                await self.engine.requeue(run, "daemon restarted before the run started")
            elif run.worker_id not in self.workers and run.status in (EXECUTING, WAITING) \
                    and self.checkpointer.checkpoint_of(run) is None:
                await self.engine.records.resume_by_replay(run.id, run.attempt_count, "The daemon "
                                                           "restarted; the task container was gone")
        self._watcher = self.supervisor.start("docker-engine", self._watch_engine)
        await self.eviction.start()

    def _find(self, worker_id: str) -> Any:
        try:
            container = self._client.containers.get(worker_id)
        except (NotFound, DockerException):
            return None
        # An exited one is adopted too: its exit code (an OOM kill, say) still belongs to its run.
        labels = container.labels or {}
        return container if labels.get(LABEL_HOME) == str(self.settings.home) else None

    async def shutdown(self, grace_s: float) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
        await super().shutdown(grace_s)
        if self._client is not None:
            self._client.close()
