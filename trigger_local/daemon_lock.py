"""One daemon per home: an exclusive `flock` on `<home>/daemon.lock`, held for the daemon's life.

`daemon.json` says where a daemon listens, but it is only a note: deleted, a second daemon used
to start on the same database and both dispatched the same runs. The lock is taken before the
store opens, and the kernel releases it when the process ends however it ends (kill -9
included), so a stale lock never blocks a start. The lock file also holds the owner's pid and
url, so a refused start can say which daemon runs even when `daemon.json` is gone.

The descriptor is close-on-exec: task processes (their own sessions, outliving a daemon killed
with -9), CRIU and docker must not inherit it, or a new daemon could not start while they run.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from pathlib import Path
from typing import Any

from .errors import DaemonAlreadyRunningError

LOCK_NAME = "daemon.lock"


class DaemonLock:
    """Held by the running daemon; `acquire` refuses when another process holds it."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path, self._fd = path, fd

    @classmethod
    def acquire(cls, home: Path) -> DaemonLock:
        home.mkdir(parents=True, exist_ok=True)
        path = home / LOCK_NAME
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            holder = read_holder(path)
            raise DaemonAlreadyRunningError(already_running_message(home, holder)) from None
        lock = cls(path, fd)
        lock.record(pid=os.getpid())
        return lock

    def record(self, **info: Any) -> None:
        """Write who holds the lock (best effort: on a full disk the lock still holds)."""
        data = json.dumps({**read_holder(self.path), **info}).encode()
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, data, 0)

    def release(self) -> None:
        if self._fd < 0:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, 0)
        os.close(self._fd)  # closing the last descriptor releases the flock
        self._fd = -1


def holder(home: Path) -> dict[str, Any] | None:
    """{"pid", "url"} of the daemon holding `home`'s lock, or None when no daemon holds it."""
    path = home / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return read_holder(path) or {"pid": None, "url": None}
    finally:
        os.close(fd)  # also drops the shared lock taken when nobody held it
    return None


def already_running_message(home: Path, info: dict[str, Any]) -> str:
    where = ", ".join(str(v) for v in (f"pid {info['pid']}" if info.get("pid") else None,
                                       info.get("url")) if v)
    return (f"A daemon is already running for {home} ({where or 'pid unknown'}). "
            "Stop it with `trigger-local down`.")


def read_holder(path: Path) -> dict[str, Any]:
    """What a lock file's holder wrote of itself ({} when unreadable)."""
    try:
        info = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}
