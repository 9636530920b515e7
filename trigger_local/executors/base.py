"""The executors' seams: what the dispatcher needs from an executor (`Executor`), what an
executor asks of its checkpointer (`Checkpoints`), and what a checkpointer and a normal stop
need from the executor that owns the task processes (`WorkerPool`, `ContainerPool`) — so that
neither imports the executor's class."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, Literal, Protocol

from ..config import DaemonSettings
from ..engine import Engine
from ..store.models import Checkpoint, Run
from ..supervise import Supervisor
from .criu import Capability
from .workers import WorkerHandle


class Executor(Protocol):
    name: str

    async def start(self) -> None:
        """Adopt the processes a previous daemon left running; begin watching them."""

    def capacity(self) -> int:
        """How many more runs could start right now (idle warm processes plus room for new
        ones)."""

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


class Checkpoints(Protocol):
    """What the process executor asks of its checkpointer: CRIU on a process
    (executors/checkpoints.py) or `docker checkpoint` on a container
    (executors/docker_checkpoints.py)."""

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
    """The executor as its checkpointer and a normal stop see it: the task processes it owns,
    and its background jobs."""

    engine: Engine
    settings: DaemonSettings
    supervisor: Supervisor
    logs_dir: Path
    workers: dict[str, WorkerHandle]
    #: a stop that kills held processes too (`trigger-local down --kill-waiting`)
    kill_waiting: bool

    @property
    def checkpointer(self) -> Checkpoints: ...

    def spawn(self, job: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run `job` in the background, supervised, and remember it until it is done."""
        ...

    def jobs(self) -> list[asyncio.Task[Any]]:
        """The background jobs still running."""
        ...

    def can_checkpoint(self) -> bool: ...

    def begin_stop(self) -> None:
        """From now on no process takes work, and exits are expected."""
        ...

    async def forget_frozen(self, worker: WorkerHandle, run_id: str) -> None:
        """`worker` was checkpointed and is gone: it no longer counts against max_processes."""
        ...

    def freeze_settled(self, ck: Checkpoint, finished: bool) -> None:
        """A dump the last daemon left pending was finished or undone: answer the runtime that
        may still wait for its freeze handshake."""
        ...


class ContainerPool(WorkerPool, Protocol):
    """The docker executor as its checkpointer sees it: a pool of containers."""

    @property
    def client(self) -> Any:
        """The docker SDK client (None until the engine first answered)."""
        ...

    def discard_container(self, worker_id: str) -> None:
        """Remove a stopped container that will not run again (blocking: from a thread)."""
        ...

    def handle_for_restored(self, run: Run, worker_id: str, container: Any) -> WorkerHandle:
        """The handle of a container started again from its checkpoint, running `run`."""
        ...
