"""Does a process hold a TCP socket? CRIU cannot checkpoint a connection to a peer outside the
dump, so the daemon waits for the runtime to have closed them all before freezing it.
And the pid side of a checkpoint: a restore needs the dumped process's pid free again."""

from __future__ import annotations

import asyncio
import os
import time

#: how long a freeze waits for the runtime to hold no TCP connection: well under
#: freeze_grace_s, the runtime stays quiet that long
SOCKET_WAIT_S = 0.2
_POLL_S = 0.002  # one look is ~0.5 ms (no socket tables read): poll finely
_TCP_NAMES = (b"TCP", b"TCPv6", b"MPTCP", b"MPTCPv6")


def tcp_socket_count(pid: int) -> int:
    """TCP sockets (in any state) among `pid`'s open files; -1 if the process is gone.

    Each socket's protocol comes from its `system.sockprotoname` attribute ("TCP", "UNIX-STREAM",
    "UDP", ...), read through /proc/PID/fd. That costs microseconds; reading /proc/PID/net/tcp
    walks the kernel's whole connection hash table (~8 ms per read on a 24 GiB VM even with a
    hundred entries), so the tables are only a fallback for a kernel without the attribute."""
    fd_dir = f"/proc/{pid}/fd"
    try:
        fds = os.listdir(fd_dir)
    except OSError:
        return -1
    found, unnamed = 0, set()
    for fd in fds:
        path = f"{fd_dir}/{fd}"
        try:
            target = os.readlink(path)
        except OSError:
            continue  # closed meanwhile
        if not target.startswith("socket:["):
            continue
        try:
            found += os.getxattr(path, "system.sockprotoname").rstrip(b"\0") in _TCP_NAMES
        except OSError:
            # no attribute (or closed meanwhile): look it up in the tables
            unnamed.add(target[8:-1])
    return found + _tcp_in_tables(pid, unnamed) if unnamed else found


def _tcp_in_tables(pid: int, inodes: set[str]) -> int:
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
    """True once `pid` holds no TCP socket (within `timeout_s`); False if it still does or is
    gone."""
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
