"""One `trigger-local dev` per project and daemon home: an exclusive `flock` on
`<home>/dev/<ref>.lock`, held for dev's life.

A second dev of a project (the same directory, another terminal) used to start as the first
ran: both watched the files and registered a version on each change, and both streamed the
project's runs. It now stops at once with one line naming the first dev's pid and directory;
a dev of another directory with the same ref is told to give one of them its own ref. The ref
is the project dev serves: the one trigger.toml names (or its directory's name derives), or,
when it names none and TRIGGER_SECRET_KEY is a project's key, that key's project (the daemon
registers the directory as it), learnt from the daemon once it answers.
The kernel releases the lock when dev ends however it ends (kill -9 included), so a stale file
never blocks the next dev. The descriptor is close-on-exec: the daemon dev starts and the task
processes do not hold it."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from rich.markup import escape

from ..daemon_lock import read_holder
from .common import fail


@dataclass(frozen=True)
class DevLock:
    #: the lock's descriptor, kept open until dev exits; -1: not held (`problem` says why)
    fd: int
    #: why the home could not hold the lock (a full or read-only disk, no locks on it): dev
    #: says so once a daemon answers (with none, its start says why), and goes on
    problem: str = ""

    def warning(self, project: str) -> str:
        return (f"[yellow]No lock of one dev per project[/yellow] ({escape(self.problem)}): a "
                f"second `trigger-local dev` of {project} would run beside this one.")


def hold_dev_lock(home: Path, project: str, root: Path, by_key: bool = False) -> DevLock:
    """Hold the project's dev lock for dev's life; exit 1 naming the dev that holds it.
    `by_key`: `project` is the project key's (TRIGGER_SECRET_KEY), not the config's."""
    path = home / "dev" / lock_name(project)
    try:  # private, as the daemon makes its home (home.make_private)
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
        path.parent.mkdir(mode=0o700, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:  # dev used to go on in silence, with no lock (two devs ran)
        return DevLock(-1, f"{path}: {exc.strerror or exc}")
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        holder = read_holder(path)
        pid, there = holder.get("pid", "?"), holder.get("dir")
        if there and os.path.realpath(str(there)) != os.path.realpath(root):
            if by_key:
                fail(f"Project {project} is served by `trigger-local dev` in {there} (pid "
                     f"{pid}); TRIGGER_SECRET_KEY here in {root} is that project's key too. Stop "
                     "that dev (Ctrl-C there), or use another project's key here.")
            # two projects to their user (a copied trigger.toml, two folders of one name):
            # the daemon's 409 words (engine/project_state.py `check_dir`), not "stop it"
            fail(f"Project {project} is served by `trigger-local dev` in {there} (pid {pid}); "
                 f"{root} has the same project ref. Give one of them its own "
                 "`project = \"...\"` in trigger.toml.")
        where = f" in {there}" if there else ""
        fail(f"`trigger-local dev` of {project} already runs (pid {pid}{where}): it registers "
             "this project and shows its runs. Stop it (Ctrl-C there) to start another.")
    except OSError as exc:  # ENOLCK: a file system without locks (an NFS home) was a traceback
        os.close(fd)
        return DevLock(-1, f"{path}: {exc.strerror or exc}")
    with contextlib.suppress(OSError):  # best effort: on a full disk the lock still holds
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "dir": str(root)}).encode(), 0)
    return DevLock(fd)


def lock_name(project: str) -> str:
    """`<ref>.lock`; a ref with capitals also carries a short hash of itself: refs are
    case-sensitive (`Proj_A` and `proj_a` are two projects) and a case-insensitive disk
    (macOS's default) would make their files one."""
    if project == project.lower():
        return f"{project}.lock"
    return f"{project}.{hashlib.sha256(project.encode()).hexdigest()[:8]}.lock"

