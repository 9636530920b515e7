"""ProcessExecutor: attempts run in local `python -m trigger_local.runtime work` processes.

Runs of async tasks share processes (executors/sharing.py: up to `runs_per_process` executing
at once per process, waiting ones as suspended coroutines). A sync or `isolated` task's run has
a process to itself: a process holding such a waiting run stays alive and blocked (or is
checkpointed); its concurrency slot is released but it counts against `max_processes`.
Processes are kept warm: after a run, a process long-polls for the next run of the same version
(up to `warm_runs_per_process` runs). They start in their own session with output to a file:
they outlive a daemon killed with -9 and the next daemon adopts them.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import structlog

from ..config import DaemonSettings
from ..engine import Engine
from ..engine.events import AttemptAborted, RunStatusChanged
from ..home import user_umask
from ..ids import new_id
from ..store.models import EXECUTING, WAITING, Checkpoint, Run, Version, Worker
from ..supervise import Supervisor
from .adoption import adopt
from .assignments import assignment, worker_env
from .base import Checkpoints
from .checkpoints import Checkpointer
from .eviction import Evictor
from .exits import watch_exit
from .freezing import FreezeHandshake
from .sharing import Answer, SharedRuns
from .stopping import stop_processes
from .workers import (
    BUSY,
    HELD,
    IDLE,
    KILLED,
    STARTING,
    WorkerHandle,
)

log = structlog.get_logger("executor")

class ProcessExecutor:
    name = "process"

    def __init__(self, engine: Engine, settings: DaemonSettings, secret_key: str,
                 wake_dispatcher: Callable[[], None], *,
                 supervisor: Supervisor | None = None) -> None:
        self.engine = engine
        self.supervisor = supervisor or Supervisor(settings.loop_failure_limit, home=settings.home)
        self.settings = settings
        self.secret_key = secret_key
        self._wake = wake_dispatcher
        self.workers: dict[str, WorkerHandle] = {}
        self._by_run: dict[str, str] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._versions: dict[str, Version] = {}
        self._stopping = False
        self.kill_waiting = False  # a stop that kills held processes too (down --kill-waiting)
        self.logs_dir = settings.home / "logs" / "workers"
        engine.hub.subscribe(RunStatusChanged, self._on_run_moved)
        engine.hub.subscribe(AttemptAborted, self._on_attempt_aborted)
        self.checkpointer: Checkpoints = self._make_checkpointer()
        self.freezes = FreezeHandshake(self, self._done_file)
        self.sharing = SharedRuns(settings, wake_dispatcher)
        self.eviction = Evictor(self)  # long waits leave memory (executors/eviction.py)

    def _make_checkpointer(self) -> Checkpoints:
        """CRIU on the task process; the docker executor checkpoints its containers instead."""
        return Checkpointer(self)

    # -- bookkeeping --------------------------------------------------------------------------
    def spawn(self, job: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = self.supervisor.spawn(getattr(job, "__qualname__", "executor job"), job)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def jobs(self) -> list[asyncio.Task[Any]]:
        return [t for t in self._tasks if not t.done()]

    def begin_stop(self) -> None:
        self._stopping = True

    def _watch(self, worker: WorkerHandle) -> None:
        worker.monitor = self.spawn(self._monitor(worker))

    def _on_attempt_aborted(self, event: AttemptAborted) -> None:
        worker = self.workers.get(event.worker_id)
        if worker is not None and worker.shared:
            self.sharing.abort(worker, event.run_id, event.reason)  # neighbours go on
        elif worker is not None:
            log.info("killing task process", worker=worker.id, run=event.run_id,
                     reason=event.reason)
            worker.state = KILLED
            worker.abort(event.reason)

    def _on_run_moved(self, event: RunStatusChanged) -> None:
        worker = self.workers.get(self._by_run.get(event.run_id, ""))
        if worker is not None and worker.shared and event.run_id in worker.runs:
            if event.attempt_ended:
                self._by_run.pop(event.run_id, None)
            self.sharing.moved(worker, event.run_id, event.status, event.attempt_ended)
            return
        if worker is None or worker.run_id != event.run_id:
            return
        if event.attempt_ended:
            # the process takes the next run as soon as it asks: the dispatcher has room again
            self._by_run.pop(event.run_id, None)
            worker.run_id = worker.attempt = None
            worker.runs_done += 1
            if worker.state != KILLED:
                worker.state = IDLE
            self._wake()
        elif event.status == WAITING:
            worker.state = HELD
        elif event.status == EXECUTING:
            worker.state = BUSY

    def live_processes(self) -> int:
        return len(self.workers)

    def capacity(self) -> int:
        """Runs that can start now: idle processes and the room of shared ones, plus new ones
        while few are still booting."""
        idle = booting = 0
        for w in self.workers.values():
            idle += self.sharing.room(w) if w.shared else (w.state == IDLE and w.mailbox.empty())
            booting += w.booting
        room = max(0, self.settings.max_processes - len(self.workers))
        return idle + min(room, max(0, self.spawn_concurrency - booting))

    @property
    def spawn_concurrency(self) -> int:
        return self.settings.spawn_concurrency or max(2, os.cpu_count() or 2)

    def holds(self, worker_id: str) -> bool:
        worker = self.workers.get(worker_id)
        if worker_id in self.checkpointer.by_worker:
            return True  # frozen on disk: resume() restores it
        return worker is not None and not worker.exited.is_set()

    def can_checkpoint(self) -> bool:
        return self.checkpointer.capability.ok

    def shares_process(self, run_id: str) -> bool:
        worker = self.workers.get(self._by_run.get(run_id, ""))
        return worker is not None and worker.shared

    def checkpoint_unavailable_reason(self) -> str:
        return self.checkpointer.capability.reason

    def describe(self) -> dict[str, Any]:
        states: dict[str, int] = {}
        for w in self.workers.values():
            states[w.state] = states.get(w.state, 0) + 1
        return {"name": self.name, "processes": len(self.workers), "states": states,
                "held_runs": self.sharing.held_runs(self.workers.values()),
                "checkpoint": self.can_checkpoint(), "checkpoints": self.checkpointer.describe(),
                "eviction": self.eviction.describe()}

    async def _version(self, version_id: str) -> Version | None:
        if version_id not in self._versions:
            version = await self.engine.queries.versions.get(version_id)
            if version is None:
                return None
            self._versions[version_id] = version
        return self._versions[version_id]

    # -- starting runs --------------------------------------------------------------------------
    async def assign(self, run: Run) -> bool:
        version = await self._version(run.version_id or "")
        if version is None:
            await self.engine.system_failure(
                run, f"Version {run.version_id} of task {run.task_id} is gone")
            return True
        task = version.task(run.task_id)
        shared = task is not None and task.shared and self.settings.runs_per_process > 1
        worker = (self.sharing.pick(self.workers.values(), version.id) if shared
                  else self._take_idle_worker(version.id))
        if worker is None:
            if len(self.workers) >= self.settings.max_processes and not self._evict_idle():
                return False
            worker = await self._spawn(version, shared=shared)
        if shared:  # its place is taken now: the dispatcher starts runs concurrently
            worker.executing.add(run.id)
        started = None
        try:
            started = await self.engine.start_attempt(run, worker.id, worker.pid, self.name)
        finally:
            if started is None and shared:
                worker.executing.discard(run.id)
            elif started is None:  # the run moved on, or the start failed: the process is free
                worker.state = IDLE if worker.state != STARTING else STARTING
        if started is None:
            return True
        run, attempt = started
        self._by_run[run.id] = worker.id
        records = await self.engine.records.for_attempt(run, attempt.number)  # replayed
        given = assignment(run, attempt, version, self.secret_key, self.settings.home, records)
        if shared:
            self.sharing.assign(worker, run.id, attempt.number, given)
            return True
        worker.state, worker.run_id, worker.attempt = BUSY, run.id, attempt.number
        worker.mailbox.put_nowait(given)
        return True

    def _take_idle_worker(self, version_id: str) -> WorkerHandle | None:
        for worker in self.workers.values():
            if worker.version_id == version_id and worker.state == IDLE and not worker.shared \
                    and worker.mailbox.empty():
                worker.state = BUSY  # taken now: the dispatcher starts runs concurrently
                return worker
        return None

    def _evict_idle(self) -> bool:
        """Make room by stopping an idle process (of a version no project runs any more first)."""
        current = self.engine.projects.current_ids()
        idle = [w for w in self.workers.values()
                if w.state == IDLE and w.mailbox.empty() and not w.runs]
        idle.sort(key=lambda w: w.version_id in current)
        if not idle:
            return False
        log.info("stopping an idle task process to make room", worker=idle[0].id)
        idle[0].kill()
        self.workers.pop(idle[0].id, None)
        return True

    async def _spawn(self, version: Version, *, shared: bool = False) -> WorkerHandle:
        worker_id = new_id("worker")
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.logs_dir / f"{worker_id}.log"
        # the project's env vars (envvars API) apply to processes started from now on; ours win
        env = {**os.environ, **await self.engine.process_env(version.project), **version.env,
               **worker_env(self.settings.url, self.secret_key, worker_id, version,
                            version.project_dir, log_path),
               "TRIGGER_LOCAL_UMASK": f"{user_umask():03o}"}
        with log_path.open("ab") as out:
            proc = await asyncio.create_subprocess_exec(
                version.python or sys.executable, "-m", "trigger_local.runtime", "work",
                cwd=version.project_dir, env=env, stdin=asyncio.subprocess.DEVNULL, stdout=out,
                stderr=asyncio.subprocess.STDOUT, start_new_session=True)
        worker = WorkerHandle(id=worker_id, version_id=version.id, pid=proc.pid, log_path=log_path,
                              proc=proc, booting=True, shared=shared)
        self.workers[worker_id] = worker
        self._watch(worker)  # first: a failed write below must not leave it unwatched
        await self.engine.register_worker(Worker(id=worker_id, version_id=version.id, token="",
                                                 pid=proc.pid, started_at=time.time(),
                                                 executor=self.name))
        log.debug("task process started", worker=worker_id, pid=proc.pid, version=version.id)
        return worker

    # -- the worker's side ----------------------------------------------------------------------
    async def next_assignment(self, worker_id: str, wait_s: float,
                              ack: int | None = None) -> Answer:
        worker = self.workers.get(worker_id)
        if worker is None or self._stopping:
            return "retire"
        if worker.booting:  # ready: another process may start booting
            worker.booting = False
            self._wake()
        if worker.shared:
            return await self.sharing.next(worker, wait_s, self._retire, ack)
        if not worker.mailbox.empty():
            worker.idle_polls = 0
            return worker.mailbox.get_nowait()
        if worker.state in (BUSY, HELD) and worker.run_id and worker.attempt:
            # Asking for work with an attempt still open: the process never got it (the daemon
            # died before the answer left) or dropped it. Give the run back to its queue.
            run_id, attempt = worker.run_id, worker.attempt
            self._by_run.pop(run_id, None)
            worker.run_id = worker.attempt = None
            await self.engine.worker_lost(run_id, attempt, "The task process asked for new work "
                                          "without finishing this attempt", interrupted=True)
        if self._retire(worker):
            return "retire"
        worker.state = IDLE
        self._wake()
        try:
            assignment = await asyncio.wait_for(worker.mailbox.get(), wait_s)
        except TimeoutError:
            worker.idle_polls += 1
            return None
        worker.idle_polls = 0
        return assignment

    def _retire(self, worker: WorkerHandle) -> bool:
        """Retire `worker` (it holds no run) if it should: it leaves the pool at once."""
        if not self._should_retire(worker):
            return False
        log.debug("retiring task process", worker=worker.id, runs_done=worker.runs_done)
        self.workers.pop(worker.id, None)
        self._wake()
        return True

    def _should_retire(self, worker: WorkerHandle) -> bool:
        if worker.runs_done >= self.settings.warm_runs_per_process:
            return True
        if worker.version_id not in self.engine.projects.current_ids():
            return True  # its project has a newer version
        # Only a process that found no work for a whole long-poll counts as surplus: in a burst,
        # processes are idle for a moment between runs, and retiring them then means paying
        # for a new process (imports and all) a moment later.
        if worker.idle_polls == 0:
            return False
        idle = sum(1 for w in self.workers.values()
                   if w.version_id == worker.version_id and w.state == IDLE and w is not worker)
        return idle >= self.settings.warm_idle_per_version

    async def resume(self, run: Run) -> bool:
        worker = self.workers.get(run.worker_id or "")
        if worker is not None and worker.freezing is not None:
            await worker.freezing  # a dump in progress decides whether the process is still there
        ck = self.checkpointer.checkpoint_of(run)
        if ck is not None:
            return await self._restore(run, ck)
        worker = self.workers.get(run.worker_id or "")
        if worker is None or worker.exited.is_set():
            return False
        if worker.shared:
            self._by_run[run.id] = worker.id
            if await self.engine.resume_held(run) is None:
                return False
            self.sharing.resumed(worker, run.id)
            return True
        worker.state, worker.run_id, worker.attempt = BUSY, run.id, run.attempt_count
        self._by_run[run.id] = worker.id
        return await self.engine.resume_held(run) is not None

    # -- checkpoints (executors/checkpoints.py does the CRIU part) ---------------------------------
    def request_freeze(self, run_id: str, attempt: int) -> dict[str, Any]:
        """The runtime of a waiting run asks to be frozen (executors/freezing.py)."""
        return self.freezes.request(self.workers.get(self._by_run.get(run_id, "")), run_id,
                                    attempt)

    def _done_file(self, worker_id: str, run_id: str, attempt: int) -> tuple[Path, str]:
        """Where the daemon writes the freeze's done file, and that path as the runtime sees it."""
        done = self.settings.home / "freeze" / f"{run_id}.{attempt}"
        return done, str(done)

    async def forget_frozen(self, worker: WorkerHandle, run_id: str) -> None:
        """The process is checkpointed and gone: it no longer counts against max_processes."""
        self.workers.pop(worker.id, None)
        self._by_run.pop(run_id, None)
        await self.engine.forget_worker(worker.id)
        self._wake()

    def freeze_settled(self, ck: Checkpoint, finished: bool) -> None:
        self.freezes.settled(ck, finished)

    async def _restore(self, run: Run, ck: Checkpoint) -> bool:
        if len(self.workers) >= self.settings.max_processes:
            self._evict_idle()
        worker = await self.checkpointer.restore(run, ck)
        if worker is None:
            return True  # the attempt was failed (and maybe retried): nothing more to do here
        self.workers[worker.id] = worker
        self._by_run[run.id] = worker.id
        await self.engine.register_worker(Worker(id=worker.id, version_id=worker.version_id,
                                                 token="", pid=worker.pid, started_at=time.time(),
                                                 executor=self.name))
        self._watch(worker)
        return await self.engine.resume_held(run) is not None

    # -- process exits --------------------------------------------------------------------------
    async def _monitor(self, worker: WorkerHandle) -> None:
        await watch_exit(self, worker)

    # -- restart and shutdown ---------------------------------------------------------------------
    async def start(self) -> None:
        """Adopt the task processes a previous daemon left behind; interrupt runs whose process
        is gone (executors/adoption.py)."""
        await self.checkpointer.start()
        await adopt(self)
        await self.eviction.start()

    async def shutdown(self, grace_s: float) -> None:
        """A normal stop (executors/stopping.py): executing attempts get `grace_s` to finish, then
        are interrupted (back to their queue); waiting runs keep their place, checkpointed or
        with their process left running for the next daemon."""
        await stop_processes(self, grace_s)
