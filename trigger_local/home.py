"""The daemon's home directory at rest: private to its user, and its database checked before use.

- The home is 0700 and every file the daemon writes in it is 0600 (the database and its WAL
  hold env var values and payloads; logs hold what tasks print): the daemon runs with umask
  077, and at start it fixes what an older version left readable, saying so in its log.
  Task processes get the user's own umask back.
- `database.json` records that this home has a database (written once the database exists),
  so a database that disappeared is reported instead of silently replaced by an empty one.
- At start the database gets `PRAGMA quick_check`, bounded in time; a damaged one stops the
  start with one paragraph saying what is wrong, where, and how to recover.

Every problem is a StartupError: one message, no traceback (docs/configuration.md).
"""

from __future__ import annotations

import json
import os
import secrets
import stat
import time
import traceback
from pathlib import Path
from typing import IO, Any

import structlog

from . import __version__
from .config import DaemonSettings, home_dir
from .disk import disk_full_error, full_disk_at
from .durations import iso
from .errors import StartupError, TriggerLocalError

PRIVATE_UMASK = 0o077
DIR_MODE, FILE_MODE = 0o700, 0o600
RECORD = "database.json"

_user_umask: int | None = None


def use_private_umask() -> None:
    """From now on this process creates files 0600 and directories 0700."""
    global _user_umask
    previous = os.umask(PRIVATE_UMASK)
    if _user_umask is None:
        _user_umask = previous


def user_umask() -> int:
    """The umask this process had before `use_private_umask`: what task processes run with."""
    if _user_umask is not None:
        return _user_umask
    current = os.umask(0o022)
    os.umask(current)
    return current


def make_private(home: Path) -> list[str]:
    """Create `home` (0700) if needed and make it and everything in it private: directories
    0700, files 0600 (symlinks are left alone). Returns the paths whose mode it changed."""
    if home.exists() and not home.is_dir():
        raise StartupError(f"Cannot use {home} as the daemon's home: it is a file, not a "
                           "directory. Point TRIGGER_LOCAL_HOME (or --home) at a directory you "
                           "own.")
    try:
        home.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        fixed = _restrict(home, DIR_MODE)
        for root, dirs, files in os.walk(home):
            for name in dirs:
                fixed += _restrict(Path(root) / name, DIR_MODE)
            for name in files:
                fixed += _restrict(Path(root) / name, FILE_MODE)
    except OSError as exc:
        named = exc.filename and str(exc.filename) != str(home)
        raise StartupError(f"Cannot use {home} as the daemon's home: "
                           f"{exc.strerror or exc}{f' ({exc.filename})' if named else ''}. Point "
                           "TRIGGER_LOCAL_HOME (or --home) at a directory you own.") from None
    return fixed


def _restrict(path: Path, mode: int) -> list[str]:
    st = path.lstat()
    if stat.S_ISLNK(st.st_mode) or stat.S_IMODE(st.st_mode) & ~mode == 0:
        return []
    path.chmod(stat.S_IMODE(st.st_mode) & mode)
    return [str(path)]


def open_private(path: Path, mode: str = "ab") -> IO[Any]:
    """Open (creating it 0600) a file in the home from a process that keeps the user's umask."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if "a" in mode else os.O_TRUNC)
    return os.fdopen(os.open(path, flags, FILE_MODE), mode)


# -- the database ---------------------------------------------------------------------------

def check_database(home: Path, db_path: Path, budget_s: float) -> bool:
    """Refuse to start on a database that is missing (when this home had one) or damaged.

    `budget_s` bounds the quick_check (0: skip it). Returns False when the check ran out of
    time, which is not an error: a big database is not a damaged one."""
    record = home / RECORD
    if not db_path.exists():
        if record.exists():
            raise StartupError(_missing(db_path, record))
        return True
    if record.exists() and db_path.stat().st_size == 0 and not _has_wal(db_path):
        raise StartupError(damaged_message(db_path, "the file is empty (truncated to 0 bytes)"))
    if budget_s <= 0:
        return True
    # the daemon's side only (the CLI imports this module too)
    from .store.integrity import quick_check

    problem, finished = quick_check(db_path, budget_s)
    if problem is not None:
        raise full_disk_at(home) or StartupError(damaged_message(db_path, problem))
    return finished


def check_home_database(settings: DaemonSettings) -> None:
    """Before the store opens: a database that is there when it should be and passes
    quick_check within `db_check_s` (the daemon runs it in a thread, beside its imports)."""
    if settings.database_url:  # PostgreSQL checks its own pages; the home holds no database
        return
    if not check_database(settings.home, settings.db_path, settings.db_check_s):
        structlog.get_logger("daemon").warning(
            "the database check ran out of time and was skipped", seconds=settings.db_check_s,
            database=str(settings.db_path), setting="TRIGGER_LOCAL_DB_CHECK_S")


def remember_database(home: Path, db_path: Path) -> None:
    """Write `database.json` once the database exists (homes from before it get one too)."""
    record = home / RECORD
    if record.exists() or not db_path.exists():
        return
    partial = record.with_name(f".{RECORD}.{os.getpid()}")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    with os.fdopen(fd, "w") as fh:
        json.dump({"database": str(db_path), "recorded_at": iso(time.time())}, fh)
    partial.replace(record)


def _has_wal(db_path: Path) -> bool:
    wal = db_path.with_name(db_path.name + "-wal")
    return wal.exists() and wal.stat().st_size > 0


def open_failure(home: Path, db_path: Path, exc: Exception) -> TriggerLocalError:
    """What the daemon says when the store cannot open its database: a full disk when it is
    one (SQLite then fails in ways that look like damage), else the damaged-database advice."""
    return (disk_full_error(exc, home) or full_disk_at(home)
            or StartupError(damaged_message(db_path, str(exc))))


def damaged_message(db_path: Path, problem: str) -> str:
    return (f"The database {db_path} is damaged ({problem}), so the daemon did not start. To "
            f"recover, either restore it from a backup: copy the backup over {db_path} and delete "
            f"{db_path.name}-wal and {db_path.name}-shm beside it; or move it aside to start with "
            "an empty database (its runs, schedules, tokens and env vars are not carried over): mv "
            f"{db_path} {db_path}.damaged (and its -wal and -shm files), delete "
            f"{db_path.parent / RECORD}, and start again.")


def _missing(db_path: Path, record: Path) -> str:
    try:
        recorded = json.loads(record.read_text()).get("recorded_at") or "earlier"
    except (OSError, ValueError, AttributeError):
        recorded = "earlier"
    return (f"The database {db_path} is missing, but this home had one (recorded {recorded} in "
            f"{record}), so the daemon did not start rather than begin an empty one. If it was "
            "moved, put it back (with its -wal and -shm files). To start with an empty database on "
            f"purpose, delete {record} and start again.")


def daemon_id(home: Path) -> str:
    """This home's daemon id, made once: a daemon restarted on the same home is the same daemon
    (it adopts its own task processes and checkpoints)."""
    path = home / "daemon_id"
    if not path.exists():
        with open_private(path, "w") as fh:
            fh.write(f"daemon_{secrets.token_hex(8)}\n")
    return path.read_text().strip()


def save_traceback() -> str:
    """The current exception's traceback into <home>/logs/daemon-error.log; says where."""
    path = home_dir() / "logs" / "daemon-error.log"
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with open_private(path, "a") as fh:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            fh.write(f"--- {stamp} pid {os.getpid()}\n{traceback.format_exc()}\n")
    except OSError:
        return "please report it as a bug"
    return f"its traceback is in {path}; please report it as a bug"


def write_info(settings: DaemonSettings) -> Path:
    """`daemon.json`: where the daemon listens, its pid and version (clients read it)."""
    info_path = settings.home / "daemon.json"
    tmp_path = info_path.with_name(f".daemon.json.{os.getpid()}")
    tmp_path.write_text(json.dumps({"url": settings.url, "pid": os.getpid(), "version": __version__,
                                    "executor": settings.executor, "started_at": time.time(),
                                    "home": str(settings.home)}))
    tmp_path.replace(info_path)  # atomic: a reader never sees a half-written file
    return info_path


#: the port the home's last daemon listened on (`port = 0`: the next start tries it first)
LAST_PORT = "last_port"


def last_port(home: Path) -> int | None:
    """The port the home's last daemon listened on, or None."""
    try:
        port = int((home / LAST_PORT).read_text().strip())
    except (OSError, ValueError):
        return None
    return port if 0 < port < 65536 else None


def remember_port(home: Path, port: int) -> None:
    """Note `port` for the next start (best effort: on a full disk the next start picks anew)."""
    try:
        with open_private(home / LAST_PORT, "w") as fh:
            fh.write(f"{port}\n")
    except OSError:
        pass
