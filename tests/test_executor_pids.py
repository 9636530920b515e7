"""executors/sockets.py: the pid helpers of the CRIU restore path (is a process our child;
reaping one that no event loop watches, as a process restored with criu restore
--restore-sibling is), and counting a process's TCP sockets before a dump."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys

from trigger_local.executors.sockets import (
    _tcp_in_tables,
    is_child,
    reap,
    tcp_socket_count,
    wait_pid_free,
)


def test_reap_collects_an_exited_child_and_frees_its_pid() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import sys; sys.exit(7)"])
    assert is_child(proc.pid)
    code = asyncio.run(asyncio.wait_for(reap(proc.pid), 30))
    assert code == 7
    assert not os.path.exists(f"/proc/{proc.pid}")
    asyncio.run(wait_pid_free(proc.pid, 1))  # returns at once: nothing holds the pid
    proc.returncode = code  # tell Popen it is collected


def test_reap_and_is_child_leave_other_processes_alone() -> None:
    assert not is_child(1) and asyncio.run(reap(1)) is None
    assert not is_child(os.getpid())


def test_tcp_socket_count_sees_tcp_sockets_only() -> None:
    before = tcp_socket_count(os.getpid())
    pair = socket.socketpair()
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    assert tcp_socket_count(os.getpid()) == before
    server = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(server.getsockname())
    accepted, _ = server.accept()
    try:
        assert tcp_socket_count(os.getpid()) == before + 3  # listening, and both ends
        inodes = {os.readlink(f"/proc/self/fd/{s.fileno()}")[8:-1]
                  for s in (server, client, accepted)}
        assert _tcp_in_tables(os.getpid(), inodes) == 3  # the fallback agrees
    finally:
        for s in (*pair, udp, server, client, accepted):
            s.close()
    assert tcp_socket_count(os.getpid()) == before
    assert tcp_socket_count(2**22 + 12345) == -1  # no such process
