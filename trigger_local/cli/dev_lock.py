"""One `trigger-local dev` per project and daemon home: an exclusive `flock` on
`<home>/dev/<ref>.lock`, held for dev's life.

A second dev of a project (the same directory, another terminal) used to start as the first
ran: both watched the files and registered a version on each change, and both streamed the
project's runs. It now stops at once with one line naming the first dev's pid and directory;
a dev of another directory with the same ref is told to give one of them its own ref.
The kernel releases the lock when dev ends however it ends (kill -9 included), so a stale file
never blocks the next dev. The descriptor is close-on-exec: the daemon dev starts and the task
processes do not hold it."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from pathlib import Path

from .common import fail


def hold_dev_lock(home: Path, project: str, root: Path) -> int:
    """The lock's descriptor (kept open until dev exits; -1 when the home cannot hold it: the
    daemon's start then says why); exit 1 naming the dev that holds it."""
    path = home / "dev" / lock_name(project)
    try:  # private, as the daemon makes its home (home.make_private)
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
        path.parent.mkdir(mode=0o700, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError:
        return -1
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        holder = _read(path)
        pid, there = holder.get("pid", "?"), holder.get("dir")
        if there and os.path.realpath(str(there)) != os.path.realpath(root):
            # two projects to their user (a copied trigger.toml, two folders of one name):
            # the daemon's 409 words (engine/project_state.py `check_dir`), not "stop it"
            fail(f"Project {project} is served by `trigger-local dev` in {there} (pid {pid}); "
                 f"{root} has the same project ref. Give one of them its own "
                 "`project = \"...\"` in trigger.toml.")
        where = f" in {there}" if there else ""
        fail(f"`trigger-local dev` of {project} already runs (pid {pid}{where}): it registers "
             "this project and shows its runs. Stop it (Ctrl-C there) to start another.")
    with contextlib.suppress(OSError):  # best effort: on a full disk the lock still holds
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "dir": str(root)}).encode(), 0)
    return fd


def lock_name(project: str) -> str:
    """`<ref>.lock`; a ref with capitals also carries a short hash of itself: refs are
    case-sensitive (`Proj_A` and `proj_a` are two projects) and a case-insensitive disk
    (macOS's default) would make their files one."""
    if project == project.lower():
        return f"{project}.lock"
    return f"{project}.{hashlib.sha256(project.encode()).hexdigest()[:8]}.lock"


def _read(path: Path) -> dict[str, object]:
    try:
        found = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}
