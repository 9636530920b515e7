"""The executors' seams. The executor is one pool (`PoolExecutor`, executors/pool.py) composed
with a `Spawner` (a process or a container) and an optional `Checkpoints` (CRIU or `docker
checkpoint`). Here: what the dispatcher needs from the executor (`Executor`), what the pool
asks of its spawner and checkpointer, and the small views each piece gets of the others
(`WorkerPool`, `CheckpointSupport`, `Containers`) — so that no piece imports another's class."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from ..config import DaemonSettings
from ..engine import Engine
from ..store.models import Checkpoint, Run, Version
from ..supervise import Supervisor
from .criu import Capability
from .sharing import SharedRuns
from .workers import WorkerHandle

Job = Callable[[Coroutine[Any, Any, Any]], "asyncio.Task[Any]"]


class Executor(Protocol):
    name: str

    async def start(self) -> None:
        """Adopt the processes a previous daemon left running; begin watching them."""

    def capacity(self) -> int:
        """How many more runs could start right now (room on warm workers plus new ones)."""

    async def assign(self, run: Run) -> bool:
        """Start `run` (DEQUEUED) on a warm process or a new one. False: no room, requeue it."""

    def holds(self, worker_id: str) -> bool:
        """True if `worker_id` is alive and holding a waiting run."""

    async def resume(self, run: Run) -> bool:
        """Let the held process of `run` continue. False if it is gone."""

    async def next_assignment(self, worker_id: str, wait_s: float, ack: int | None = None
                              ) -> dict[str, Any] | list[dict[str, Any]] | None | Literal["retire"]:
        """The worker's long-poll: its next run, None (poll again) or "retire" (exit)."""

    def can_checkpoint(self) -> bool: ...

    def live_processes(self) -> int: ...

    async def shutdown(self, grace_s: float) -> None:
        """A normal stop: let running attempts finish for up to `grace_s`, then interrupt them;
        waiting runs keep their place (executors/stopping.py)."""

    def describe(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class CheckpointSupport:
    """What a checkpointer is given by the pool that owns it, and all it sees of it."""

    engine: Engine
    settings: DaemonSettings
    supervisor: Supervisor
    logs_dir: Path
    #: runs a background job, supervised, that the pool's stop waits for
    run_job: Job
    #: a dump the last daemon left pending was finished (True) or undone: answer the runtime
    #: that may still wait for its freeze handshake
    settled: Callable[[Checkpoint, bool], None]


class Checkpoints(Protocol):
    """What the pool asks of its checkpointer: CRIU on a process (executors/checkpoints.py) or
    `docker checkpoint` on a container (executors/docker_checkpoints.py)."""

    capability: Capability  # decided once; `reason` says why not
    by_worker: dict[str, Checkpoint]  # active checkpoints by the worker they froze

    async def start(self) -> None:
        """Decide whether this host can checkpoint; load the active checkpoints of a previous
        daemon."""

    def describe(self) -> dict[str, Any]: ...

    async def freeze(self, worker: WorkerHandle, run_id: str, attempt: int,
                     socket_wait_s: float = ...) -> bool:
        """Checkpoint the worker holding `run_id`; True when it is (and has stopped). On False
        the worker still runs and the run is held, with the reason recorded. `socket_wait_s`:
        how long to wait for the process to hold no TCP connection."""

    def checkpoint_of(self, run: Run) -> Checkpoint | None:
        """The active checkpoint of `run`'s current attempt, if any."""

    async def restore(self, run: Run, ck: Checkpoint) -> WorkerHandle | None:
        """Bring the worker back, running. None: it could not be, and the attempt has been
        failed."""

    async def settle_pending(self, ck: Checkpoint) -> bool:
        """Finish (True) or undo (False) a checkpoint that a killed daemon left `pending`."""


class WorkerPool(Protocol):
    """The pool as its spawner, its exit watches, adoption and a normal stop see it: the
    workers it owns, which run is on which, and its background jobs."""

    engine: Engine
    settings: DaemonSettings
    supervisor: Supervisor
    logs_dir: Path
    workers: dict[str, WorkerHandle]
    by_run: dict[str, str]  # run id → the worker holding it
    sharing: SharedRuns
    #: a stop that kills held processes too (`trigger-local down --kill-waiting`)
    kill_waiting: bool

    @property
    def stopping(self) -> bool:
        """A normal stop has begun: no worker takes work, and exits are expected."""
        ...

    def wake(self) -> None:
        """Tell the dispatcher there may be room for runs again."""
        ...

    def spawn(self, job: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run `job` in the background, supervised, and remember it until it is done."""
        ...

    def jobs(self) -> list[asyncio.Task[Any]]:
        """The background jobs still running."""
        ...

    def watch(self, worker: WorkerHandle) -> None:
        """Watch `worker` until it exits (the spawner's watch), then release its runs."""
        ...

    async def version(self, version_id: str) -> Version | None: ...

    def checkpoint_of(self, run: Run) -> Checkpoint | None: ...

    def is_frozen(self, worker_id: str) -> bool:
        """`worker_id` was checkpointed and waits for its restore."""
        ...

    def can_checkpoint(self) -> bool: ...

    async def freeze(self, worker: WorkerHandle, run_id: str, attempt: int,
                     socket_wait_s: float) -> bool:
        """Checkpoint `worker` (False when there is no checkpointer or it failed)."""
        ...

    def begin_stop(self) -> None:
        """From now on no process takes work, and exits are expected."""
        ...

    async def forget_frozen(self, worker: WorkerHandle, run_id: str) -> None:
        """`worker` was checkpointed and is gone: it no longer counts against max_processes."""
        ...


class Spawner(Protocol):
    """What starts the pool's workers: a local process (executors/process.py) or a container
    (executors/docker.py), and what only that kind of worker knows (its exit, its adoption)."""

    name: str  # the executor's name: "process" or "docker"
    #: False: the worker of an exclusive run (sync or isolated) serves one attempt and retires
    reuses_exclusive: bool

    def problem(self) -> str | None:
        """Why no worker can start now (the Docker engine is away), or None."""

    def boot_limit(self) -> int | None:
        """How many new workers may boot at once (None: no limit)."""

    def refuses(self, run: Run, version: Version | None) -> str | None:
        """Why `run` can never start here (its version is gone, it has no image): the pool
        fails it with this reason."""

    def fits(self, worker: WorkerHandle, run: Run) -> bool:
        """`worker` may take `run` (a container of the run's machine)."""

    def new_worker(self, worker_id: str, log_path: Path, version: Version, run: Run,
                   shared: bool) -> WorkerHandle:
        """The handle of a worker about to start for `run`."""

    async def launch(self, worker: WorkerHandle, version: Version,
                     enlist: Callable[[WorkerHandle], None]) -> None:
        """Start `worker`, calling `enlist` once a poll from it may arrive. Raises
        SpawnRefused (the run fails) or SpawnUnavailable (the run waits in its queue)."""

    def watch(self, pool: WorkerPool, worker: WorkerHandle) -> Awaitable[None]:
        """Wait for `worker` to exit, then release the runs it held."""

    def done_file(self, worker_id: str, run_id: str, attempt: int) -> tuple[Path, str]:
        """Where the daemon writes a freeze's done file, and that path as the runtime sees it."""

    async def start(self) -> None:
        """Before the checkpointer starts: find out whether workers can start at all."""

    async def adopt(self, pool: WorkerPool) -> None:
        """Adopt the workers a previous daemon left running; interrupt runs whose worker is
        gone."""

    def close(self) -> None:
        """After a stop: let go of what the spawner holds (the engine client, its watch)."""

    def describe(self, pool: WorkerPool) -> dict[str, Any]: ...


class Containers(Protocol):
    """The container spawner as the docker checkpointer sees it."""

    @property
    def client(self) -> Any:
        """The docker SDK client (None until the engine first answered)."""
        ...

    def when_engine_answers(self, check: Callable[[Any], Awaitable[None]]) -> None:
        """Call `check(client)` each time the engine is checked and answers."""
        ...

    def discard_container(self, worker_id: str) -> None:
        """Remove a stopped container that will not run again (blocking: from a thread)."""
        ...

    def handle_for_restored(self, run: Run, worker_id: str, container: Any) -> WorkerHandle:
        """The handle of a container started again from its checkpoint, running `run`."""
        ...
