"""Does a process hold a TCP socket? CRIU cannot checkpoint a connection to a peer outside the
dump, so the daemon waits for the runtime to have closed them all before freezing it."""

from __future__ import annotations

import asyncio
import os
import time

_POLL_S = 0.01


def tcp_socket_count(pid: int) -> int:
    """TCP sockets (any state but LISTEN-less closed ones) among `pid`'s open files; -1 if gone."""
    try:
        inodes = set()
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    except OSError:
        return -1
    if not inodes:
        return 0
    found = 0
    for table in ("tcp", "tcp6"):
        try:
            with open(f"/proc/{pid}/net/{table}") as fh:
                next(fh, None)
                found += sum(1 for line in fh if line.split()[9] in inodes)
        except OSError:
            continue
    return found


async def wait_until_no_tcp(pid: int, timeout_s: float) -> bool:
    """True once `pid` holds no TCP socket (within `timeout_s`); False if it still does or is gone."""
    deadline = time.monotonic() + timeout_s
    while True:
        count = tcp_socket_count(pid)
        if count == 0:
            return True
        if count < 0 or time.monotonic() >= deadline:
            return False
        await asyncio.sleep(_POLL_S)


async def wait_pid_free(pid: int, timeout_s: float) -> None:
    """Wait until no process (not even a zombie) has `pid`, reaping it if it is our own child
    (a restored process can be ours when the daemon is a child subreaper)."""
    deadline = time.monotonic() + timeout_s
    while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
        try:
            os.waitpid(pid, os.WNOHANG)  # noqa: ASYNC222 - WNOHANG never blocks
        except ChildProcessError:
            pass
        await asyncio.sleep(_POLL_S)
