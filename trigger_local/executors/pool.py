"""PoolExecutor: the one executor. A pool of workers (task processes or containers) composed
with a spawner that starts them (executors/process.py, executors/docker.py) and an optional
checkpointer that freezes a waiting one (executors/checkpoints.py, docker_checkpoints.py).

The pool owns the workers' lifecycle: which worker holds which run, warm reuse, retirement, and
capacity counted in runs. Runs of async tasks share workers (executors/sharing.py: up to
`runs_per_process` executing at once, waiting ones as coroutines). A sync or `isolated` task's
run has a worker to itself, which stays alive and blocked while the run waits (or is
checkpointed): its concurrency slot is released but it counts against `max_processes`. A worker
is kept warm for the next run of its version (up to `warm_runs_per_process` runs), unless its
spawner says an exclusive worker serves one attempt (a container)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from typing import Any

import structlog

from ..config import DaemonSettings
from ..engine import Engine
from ..engine.events import AttemptAborted, RunStatusChanged
from ..errors import SpawnRefused, SpawnUnavailable
from ..ids import new_id
from ..store.models import EXECUTING, WAITING, Attempt, Checkpoint, Run, RunStep, Version, Worker
from ..supervise import Supervisor
from .assignments import assignment, assignment_read, before_start
from .base import Checkpoints, CheckpointSupport, Spawner
from .eviction import Evictor
from .freezing import FreezeHandshake
from .handover import PoolPlaces
from .sharing import Answer, SharedRuns, claim, claimed, unclaim
from .stopping import stop_processes
from .succession import Succession
from .warm import capacity, evictable, should_retire, take_idle
from .workers import BUSY, HELD, IDLE, KILLED, STARTING, WorkerHandle, logs_dir

log = structlog.get_logger("executor")
MakeCheckpointer = Callable[[CheckpointSupport], Checkpoints]
NO_CHECKPOINTER = "this executor has no checkpointer: waiting runs are held"


class PoolExecutor:
    """The executor the dispatcher drives (`Executor`), whatever its workers are."""

    def __init__(self, engine: Engine, settings: DaemonSettings, secret_key: str,
                 wake_dispatcher: Callable[[], None], spawner: Spawner,
                 checkpointer: MakeCheckpointer | None = None, *,
                 supervisor: Supervisor | None = None) -> None:
        self.engine = engine
        self.supervisor = supervisor or Supervisor(settings.loop_failure_limit, home=settings.home)
        self.settings = settings
        self.secret_key = secret_key
        self.spawner = spawner
        self.name = spawner.name
        self._wake = wake_dispatcher
        self.workers: dict[str, WorkerHandle] = {}
        self.by_run: dict[str, str] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self.versions: dict[str, Version] = {}  # by id: they never change
        self._stopping = False
        self._launching: set[str] = set()  # workers being started: under max_processes already
        self.kill_waiting = False  # a stop that kills held processes too (down --kill-waiting)
        self.logs_dir = logs_dir(settings.home)
        engine.hub.subscribe(RunStatusChanged, self._on_run_moved)
        engine.hub.subscribe(AttemptAborted, self._on_attempt_aborted)
        self.checkpointer: Checkpoints | None = None if checkpointer is None else checkpointer(
            CheckpointSupport(engine, settings, self.supervisor, self.logs_dir, self.spawn,
                              self.freeze_settled))
        self.freezes = FreezeHandshake(self, spawner.done_file)
        self.sharing = SharedRuns(settings, wake_dispatcher, engine.wait_result)
        self.eviction = Evictor(self)  # long waits leave memory (executors/eviction.py)
        self.places = PoolPlaces(self)  # a finished run's slot, in its commit (handover.py)
        self.succession = Succession(self)  # a shared process's successor boots ahead

    # -- bookkeeping --------------------------------------------------------------------------
    def spawn(self, job: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = self.supervisor.spawn(getattr(job, "__qualname__", "executor job"), job)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def jobs(self) -> list[asyncio.Task[Any]]:
        return [t for t in self._tasks if not t.done()]

    @property
    def stopping(self) -> bool:
        return self._stopping

    def begin_stop(self) -> None:
        self._stopping = True

    def wake(self) -> None:
        self._wake()

    def watch(self, worker: WorkerHandle) -> None:
        worker.monitor = self.spawn(self._watch(worker))

    async def _watch(self, worker: WorkerHandle) -> None:
        await self.spawner.watch(self, worker)

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
        worker = self.workers.get(self.by_run.get(event.run_id, ""))
        if worker is not None and worker.shared and event.run_id in worker.runs:
            if event.attempt_ended:
                self.by_run.pop(event.run_id, None)
            self.sharing.moved(worker, event.run_id, event.status, event.attempt_ended,
                               unblocked_by=event.extra.get("waitpoint_id"),
                               in_place=event.previous == WAITING, result=event.extra.get("result"))
            return
        if worker is None or worker.run_id != event.run_id:
            return
        if event.attempt_ended:
            # the worker takes the next run as soon as it asks: the dispatcher has room again
            self.by_run.pop(event.run_id, None)
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
        return len(self.workers.keys() | self._launching)  # launching ones count already

    def capacity(self) -> int:
        """Runs that can start now (executors/warm.py `capacity`)."""
        if self.spawner.problem():
            return 0
        return capacity(self.workers.values(), self.sharing.room, self.spawner,
                        max(0, self.settings.max_processes - self.live_processes()))

    def holds(self, worker_id: str) -> bool:
        worker = self.workers.get(worker_id)  # or frozen on disk: resume() restores it
        return self.is_frozen(worker_id) or (worker is not None and not worker.exited.is_set())

    def can_checkpoint(self) -> bool:
        return self.checkpointer is not None and self.checkpointer.capability.ok

    def shares_process(self, run_id: str) -> bool:
        worker = self.workers.get(self.by_run.get(run_id, ""))
        return worker is not None and worker.shared

    def checkpoint_unavailable_reason(self) -> str:
        return self.checkpointer.capability.reason if self.checkpointer else NO_CHECKPOINTER

    def describe(self) -> dict[str, Any]:
        states = dict(Counter(w.state for w in self.workers.values()))
        return {"name": self.name, "processes": self.live_processes(), "states": states,
                **self.sharing.describe(self.workers.values()),
                "checkpoint": self.can_checkpoint(),
                "checkpoints": self.checkpointer.describe() if self.checkpointer
                else {"available": False, "reason": NO_CHECKPOINTER},
                **self.spawner.describe(self), "eviction": self.eviction.describe(),
                "handed_over": self.places.runs, "successors": self.succession.started}

    async def version(self, version_id: str) -> Version | None:
        if version_id not in self.versions and \
                (version := await self.engine.queries.versions.get(version_id)) is not None:
            self.versions[version_id] = version
        return self.versions.get(version_id)

    # -- starting runs --------------------------------------------------------------------------
    async def assign(self, run: Run) -> bool:
        if self.spawner.problem():
            return False
        version = await self.version(run.version_id or "")
        refused = self.spawner.refuses(run, version)
        if version is None or refused:
            await self.engine.system_failure(run, refused or f"Version {run.version_id} is gone")
            return True
        records = await before_start(self.engine, run, self.settings.home)
        task = version.task(run.task_id)
        shared = task is not None and task.shared and self.settings.runs_per_process > 1
        worker = await self.sharing.place(self.workers, version.id, run, self.spawner.fits) \
            if shared else take_idle(self.workers.values(), version.id) \
            if self.spawner.reuses_exclusive else None
        if worker is None:
            if self.live_processes() >= self.settings.max_processes and not self._evict_idle():
                return False
            try:
                worker = await self.start_worker(version, run, shared)
            except SpawnRefused as exc:
                await self.engine.system_failure(run, str(exc))
                return True
            except SpawnUnavailable:
                return False
        return await self._start_on(worker, version, run, shared, records)

    async def _start_on(self, worker: WorkerHandle, version: Version, run: Run,
                        shared: bool, records: list[RunStep]) -> bool:
        """Start `run`'s attempt on `worker` and hand it the assignment (`records`: read before
        the start, `before_start`; nothing after its commit asks the database)."""
        if shared:  # its place is taken now (concurrent starts), a cancel meanwhile finds it
            claim(self.by_run, worker, run.id, run.attempt_count + 1)
        started = None
        try:
            started = await self.engine.start_attempt(run, worker.id, worker.pid, self.name,
                                                      replays=len(records))
        finally:
            if started is None and shared:
                unclaim(self.by_run, worker, run.id)
            elif started is None and not self.spawner.reuses_exclusive:
                worker.kill()  # started for this run alone
            elif started is None:  # the run moved on, or the start failed: the worker is free
                worker.state = IDLE if worker.state != STARTING else STARTING
        if started is not None and (not shared or claimed(self.by_run, worker, run.id)):
            await self.give(worker, version, *started, shared, records)
        return True

    async def give(self, worker: WorkerHandle, version: Version, run: Run, attempt: Attempt,
                   shared: bool, records: list[RunStep] | None = None) -> None:
        """Hand `worker` the assignment of `run`'s `attempt`, which has started on it;
        `records`: read before the start (None: read now, a hand-over's start)."""
        self.by_run[run.id], home = worker.id, self.settings.home
        given = assignment(run, attempt, version, self.secret_key, home, records) if records \
            is not None else await assignment_read(self.engine, run, attempt, version,
                                                   self.secret_key, home)
        if shared:
            self.sharing.assign(worker, run.id, attempt.number, given)
            self.succession.after_assign(worker, version, run)
        else:
            worker.state, worker.run_id, worker.attempt = BUSY, run.id, attempt.number
            worker.mailbox.put_nowait(given)

    def _evict_idle(self) -> bool:
        """Make room by stopping an idle worker."""
        worker = evictable(self.workers.values(), self.engine.projects.current_ids())
        if worker is None:
            return False
        log.info("stopping an idle task process to make room", worker=worker.id)
        worker.kill()
        self.workers.pop(worker.id, None)
        return True

    async def start_worker(self, version: Version, run: Run, shared: bool) -> WorkerHandle:
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        worker_id = new_id("worker")
        worker = self.spawner.new_worker(worker_id, self.logs_dir / f"{worker_id}.log", version,
                                         run, shared)
        self._launching.add(worker.id)  # concurrent starts see it before its first await
        try:
            with self.sharing.launching(version.id if shared else None):
                await self.spawner.launch(worker, version, self._enlist)
        except BaseException:
            self.workers.pop(worker.id, None)
            raise
        finally:
            self._launching.discard(worker.id)
        self.watch(worker)  # first: a failed write below must not leave it unwatched
        if self._stopping:  # the stop's kill loop may have passed: it would outlive the daemon
            worker.kill()
            raise SpawnUnavailable("the daemon is stopping")
        await self._register(worker)
        log.debug("task worker started", worker=worker.id, pid=worker.pid, version=version.id,
                  executor=self.name)
        return worker

    def _enlist(self, worker: WorkerHandle) -> None:
        self.workers[worker.id] = worker

    async def _register(self, worker: WorkerHandle) -> None:
        await self.engine.register_worker(Worker(id=worker.id, version_id=worker.version_id,
                                                 token="", pid=worker.pid, started_at=time.time(),
                                                 executor=self.name))

    # -- the worker's side ----------------------------------------------------------------------
    async def next_assignment(self, worker_id: str, wait_s: float,
                              ack: int | None = None) -> Answer:
        worker = self.workers.get(worker_id)
        if worker is None or self._stopping:
            return "retire"
        if worker.booting:  # ready: another worker may start booting
            worker.booting = False
            self._wake()
        if worker.shared:
            return await self.sharing.next(worker, wait_s, self._retire, ack)
        if not worker.mailbox.empty():
            worker.idle_polls = 0
            return worker.mailbox.get_nowait()
        if worker.state in (BUSY, HELD) and worker.run_id and worker.attempt:
            # Asking for work with an attempt still open: the worker never got it (the daemon
            # died before the answer left) or dropped it. Give the run back to its queue.
            run_id, attempt = worker.run_id, worker.attempt
            self.by_run.pop(run_id, None)
            worker.run_id = worker.attempt = None
            await self.engine.worker_lost(run_id, attempt, "The task process asked for new work "
                                          "without finishing this attempt", interrupted=True)
        if self._retire(worker):
            return "retire"
        worker.state = IDLE
        self._wake()
        try:
            given = await asyncio.wait_for(worker.mailbox.get(), wait_s)
        except TimeoutError:
            worker.idle_polls += 1
            return None
        worker.idle_polls = 0
        return given

    def _retire(self, worker: WorkerHandle) -> bool:
        """Retire `worker` (it holds no run) if it should: it leaves the pool at once."""
        if not should_retire(worker, self.workers.values(), self.settings,
                             self.engine.projects.current_ids(), self.spawner.reuses_exclusive):
            return False
        log.debug("retiring task process", worker=worker.id, runs_done=worker.runs_done)
        self.workers.pop(worker.id, None)
        self._wake()
        return True

    async def resume(self, run: Run) -> bool:
        worker = self.workers.get(run.worker_id or "")
        if worker is not None and worker.freezing is not None:
            await worker.freezing  # a dump in progress decides whether the worker is still there
        ck = self.checkpoint_of(run)
        if ck is not None:
            return await self._restore(run, ck)
        worker = self.workers.get(run.worker_id or "")
        if worker is None or worker.exited.is_set():
            return False
        self.by_run[run.id] = worker.id
        if worker.shared:
            if await self.engine.resume_held(run) is None:
                return False
            await self.sharing.resumed(worker, run.id)
            return True
        worker.state, worker.run_id, worker.attempt = BUSY, run.id, run.attempt_count
        return await self.engine.resume_held(run) is not None

    # -- checkpoints (the checkpointer does the CRIU or engine part) -------------------------------
    def checkpoint_of(self, run: Run) -> Checkpoint | None:
        return self.checkpointer.checkpoint_of(run) if self.checkpointer else None

    def is_frozen(self, worker_id: str) -> bool:
        return self.checkpointer is not None and worker_id in self.checkpointer.by_worker

    async def freeze(self, worker: WorkerHandle, run_id: str, attempt: int,
                     socket_wait_s: float) -> bool:
        if self.checkpointer is None:
            return False
        return await self.checkpointer.freeze(worker, run_id, attempt, socket_wait_s)

    def request_freeze(self, run_id: str, attempt: int) -> dict[str, Any]:
        """The runtime of a waiting run asks to be frozen (executors/freezing.py)."""
        return self.freezes.request(self.workers.get(self.by_run.get(run_id, "")), run_id, attempt)

    async def forget_frozen(self, worker: WorkerHandle, run_id: str) -> None:
        """The worker is checkpointed and gone: it no longer counts against max_processes."""
        self.workers.pop(worker.id, None)
        self.by_run.pop(run_id, None)
        await self.engine.forget_worker(worker.id)
        self._wake()

    def freeze_settled(self, ck: Checkpoint, finished: bool) -> None:
        self.freezes.settled(ck, finished)

    async def _restore(self, run: Run, ck: Checkpoint) -> bool:
        assert self.checkpointer is not None  # a checkpoint was found by it
        if self.live_processes() >= self.settings.max_processes:
            self._evict_idle()
        worker = await self.checkpointer.restore(run, ck)
        if worker is None:
            return True  # the attempt was failed (and maybe retried): nothing more to do here
        self.workers[worker.id] = worker
        self.by_run[run.id] = worker.id
        await self._register(worker)
        self.watch(worker)
        return await self.engine.resume_held(run) is not None

    # -- restart and shutdown ---------------------------------------------------------------------
    async def start(self) -> None:
        """Adopt the last daemon's workers, interrupt runs whose worker is gone; start evicting."""
        await self.spawner.start()
        if self.checkpointer is not None:
            await self.checkpointer.start()
        await self.spawner.adopt(self)
        await self.eviction.start()

    async def shutdown(self, grace_s: float) -> None:
        """A normal stop: executing attempts get `grace_s` to finish (executors/stopping.py)."""
        try:
            await stop_processes(self, grace_s)
        finally:
            self.spawner.close()
