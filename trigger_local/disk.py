"""Telling a full disk from other failures.

A full disk shows up in three shapes: SQLite's SQLITE_FULL ("database or disk is full"), an
OSError with ENOSPC (or EDQUOT) from a file write (logs, packets, checkpoints), and SQLite's
SQLITE_IOERR ("disk I/O error"), which is what a failed WAL write sometimes becomes. The first
two always mean a full disk; an I/O error only when the home's disk really has no room left,
so a broken disk is not reported as a full one.

All of them become one `DiskFullError` (507, errors.py): the API answers it, and the daemon's
loops wait it out instead of counting it as a fault (supervise.py).
"""

from __future__ import annotations

import errno
import shutil
import sqlite3
from pathlib import Path

from .errors import DiskFullError

_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
#: below this much free space an I/O error counts as a full disk (SQLite writes pages of 4 KiB)
_NEARLY_FULL_BYTES = 1024 * 1024


def disk_full_error(exc: BaseException, home: Path | str) -> DiskFullError | None:
    """`exc` as a DiskFullError naming `home`, or None when `exc` is not about a full disk."""
    if isinstance(exc, DiskFullError):
        return exc
    if not _is_disk_full(exc, home):
        return None
    return DiskFullError(f"disk full at {home}: free space, then retry", path=str(home))


def full_disk_at(home: Path | str) -> DiskFullError | None:
    """A DiskFullError when the home's disk has (nearly) no room left, else None.

    For a database that cannot be opened or checked at start: on a full disk SQLite fails in
    ways that look like damage ("disk I/O error", "cannot rollback"), and calling the file
    damaged would send the user to move a healthy database aside."""
    if not _nearly_full(home):
        return None
    return DiskFullError(f"disk full at {home}: free space, then retry", path=str(home))


def _is_disk_full(exc: BaseException, home: Path | str) -> bool:
    if isinstance(exc, OSError) and exc.errno in _FULL_ERRNOS:
        return True
    if not isinstance(exc, sqlite3.Error):
        return False
    code = getattr(exc, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    if primary == sqlite3.SQLITE_FULL or "disk is full" in str(exc):
        return True
    if primary == sqlite3.SQLITE_IOERR or "disk I/O error" in str(exc):
        return _nearly_full(home)
    return False


def _nearly_full(home: Path | str) -> bool:
    try:
        return shutil.disk_usage(home).free < _NEARLY_FULL_BYTES
    except OSError:
        return False
