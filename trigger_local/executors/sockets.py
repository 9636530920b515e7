"""Does a process hold a TCP socket? CRIU cannot checkpoint a connection to a peer outside the
dump, so the daemon waits for the runtime to have closed them all before freezing it.
And the pid side of a checkpoint: a restore needs the dumped process's pid free again."""

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
    """Wait until no process (not even a zombie) has `pid`.

    Normally it already is free: the daemon reaps its own task processes, and a restored one is
    its child too (criu restore --restore-sibling). Only a process left by an earlier daemon is
    init's child, and its zombie lasts until init reaps it. No waitpid here: a child started by
    the event loop must be reaped by the loop, or its exit is never reported."""
    deadline = time.monotonic() + timeout_s
    while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
        await asyncio.sleep(_POLL_S)


def is_child(pid: int) -> bool:
    """Is `pid` a child of this process (a restored task process is)?"""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            stat = fh.read()
    except OSError:
        return False
    # the command name, in parentheses, may hold spaces: the fields after it are fixed
    return int(stat[stat.rindex(")") + 2:].split()[1]) == os.getpid()


async def reap(pid: int) -> int | None:
    """Collect an exited child that no event loop watches (a restored process): its exit code,
    negative for a signal as asyncio reports it; None if it is not our child.

    Called once the process has exited (its pidfd is readable), but it may not be waitable yet:
    a process CRIU has just dumped is still traced by `criu`, and becomes its parent's to reap
    only when `criu` lets go of it. Hence a blocking wait, in a thread."""
    try:
        _, status = await asyncio.to_thread(os.waitpid, pid, 0)
    except ChildProcessError:
        return None
    return os.waitstatus_to_exitcode(status)
