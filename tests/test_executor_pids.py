"""The pid helpers of the CRIU restore path (executors/sockets.py): is a process our child, and
reaping one that no event loop watches (a process restored with criu restore --restore-sibling)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

from trigger_local.executors.sockets import is_child, reap, wait_pid_free


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
