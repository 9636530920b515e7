"""A handle on one task process, and how to tell how it ended."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import CANCEL_SIGNAL

IDLE, BUSY, HELD, STARTING, KILLED = "idle", "busy", "held", "starting", "killed"
#: how long those hooks may take before the process group is killed
CANCEL_GRACE_S = 5.0


@dataclass
class WorkerHandle:
    id: str
    version_id: str
    pid: int | None
    log_path: Path
    proc: asyncio.subprocess.Process | None = None  # None when adopted after a daemon restart
    state: str = STARTING
    run_id: str | None = None
    attempt: int | None = None
    runs_done: int = 0
    idle_polls: int = 0  # long-polls in a row that found no work
    booting: bool = False  # spawned by us and has not asked for work yet (still importing)
    mailbox: asyncio.Queue[dict[str, Any]] = field(default_factory=lambda: asyncio.Queue(maxsize=1))
    exited: asyncio.Event = field(default_factory=asyncio.Event)
    exit_code: int | None = None
    # set while CRIU dumps the process: True once it is checkpointed (its exit is then expected)
    freezing: asyncio.Future[bool] | None = None
    monitor: asyncio.Task[None] | None = None  # the executor's watch on its exit
    released: bool = False  # left running by a normal stop: the next daemon adopts it
    #: a shared process (executors/sharing.py): many runs of async tasks at once; `run_id` and
    #: `attempt` stay None, its runs are in `runs`
    shared: bool = False
    runs: dict[str, int] = field(default_factory=dict)  # run id → attempt, executing or waiting
    executing: set[str] = field(default_factory=set)  # those of `runs` executing (not waiting)
    messages: list[dict[str, Any]] = field(default_factory=list)  # for its next poll
    ready: asyncio.Event = field(default_factory=asyncio.Event)  # `messages` has some
    #: the number of its last message; it starts from the clock, so that the numbers of the
    #: next daemon's messages are higher than those the process saw from this one
    seq: int = field(default_factory=lambda: time.time_ns() // 1000)


    def abort(self, reason: str) -> None:
        """The engine ended the attempt: a cancel lets on_cancel hooks run first, a max
        duration kills at once."""
        if reason == "max_duration":
            self.kill()
        else:
            self.cancel(CANCEL_GRACE_S)

    def cancel(self, grace_s: float) -> None:
        """A cancel: ask the process to run its on_cancel hooks (CANCEL_SIGNAL), then SIGKILL
        its group `grace_s` later, or sooner when it exits by itself."""
        if self.pid is None or self.exited.is_set():
            return
        try:
            os.kill(self.pid, CANCEL_SIGNAL)
        except (ProcessLookupError, PermissionError):
            self.kill()
            return
        asyncio.get_running_loop().call_later(grace_s, self.kill)

    def kill(self) -> None:
        """SIGKILL the whole process group (the task may have started children)."""
        if self.pid is None or self.exited.is_set():
            return
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def logs_dir(home: Path) -> Path:
    """Where the workers' output logs (and log spools) are kept."""
    return home / "logs" / "workers"


def describe_exit(code: int | None, log_path: Path) -> str:
    """A sentence for the run's error: the exit code or signal, and the end of the process log."""
    if code is None:
        what = "The task process exited"
    elif code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        what = f"The task process was killed by {name}"
        if name == "SIGSEGV":
            what += " (segmentation fault)"
        elif name == "SIGKILL":
            what += " (killed, possibly out of memory)"
    else:
        what = f"The task process exited with code {code}"
    tail = log_tail(log_path)
    return f"{what}.\n--- last lines of {log_path.name} ---\n{tail}" if tail else f"{what}."


def log_tail(path: Path, max_bytes: int = 2000) -> str:
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - max_bytes))
            return fh.read().decode(errors="replace").strip()
    except OSError:
        return ""


def pid_is_worker(pid: int, worker_id: str) -> bool:
    """True if `pid` is alive and is the task process `worker_id` (not a recycled pid)."""
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False
    return f"TRIGGER_LOCAL_WORKER_ID={worker_id}".encode() in environ.split(b"\0")


async def watch_pid(pid: int) -> None:
    """Return when a process that is not our child exits (pidfd on Linux)."""
    loop = asyncio.get_running_loop()
    try:
        fd = os.pidfd_open(pid)
    except (ProcessLookupError, OSError):
        return
    done: asyncio.Future[None] = loop.create_future()

    def readable() -> None:
        if not done.done():
            done.set_result(None)

    loop.add_reader(fd, readable)
    try:
        await done
    finally:
        loop.remove_reader(fd)
        os.close(fd)
