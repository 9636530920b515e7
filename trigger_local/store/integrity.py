"""`PRAGMA quick_check` of a database file before the store opens it, bounded in time."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from pathlib import Path

#: problems quick_check lists at most (the first says enough)
CHECK_ROWS = 5


def quick_check(db_path: Path, budget_s: float) -> tuple[str | None, bool]:
    """(what is wrong with the database at `db_path` or None, whether the check finished).

    A timer interrupts the check after `budget_s` seconds: then it is (None, False), since a big
    database is not a damaged one, and the daemon must start in bounded time. (A progress
    handler alone cannot bound it: SQLite checks every b-tree in one step of its program, and
    calls the handler only between steps — on a million-run database that step took 34 s. The
    handler stays for the steps around it, where a busy machine may not run the timer yet.)"""
    try:
        conn = sqlite3.connect(str(db_path), isolation_level=None, check_same_thread=False)
    except sqlite3.Error as exc:
        return str(exc), True
    def interrupt() -> None:
        with contextlib.suppress(sqlite3.Error):  # closed meanwhile: the check is over anyway
            conn.interrupt()

    timer = threading.Timer(budget_s, interrupt)
    timer.daemon = True
    timer.start()
    # and between steps, without waiting for the timer's thread to be scheduled
    deadline = time.monotonic() + budget_s
    conn.set_progress_handler(lambda: time.monotonic() > deadline, 1000)
    try:
        rows = [str(r[0]) for r in conn.execute(f"PRAGMA quick_check({CHECK_ROWS})").fetchall()]
    except sqlite3.OperationalError as exc:
        return (None, False) if "interrupt" in str(exc) else (str(exc), True)
    except sqlite3.Error as exc:
        return str(exc), True
    finally:
        timer.cancel()
        conn.close()
    return (None if rows == ["ok"] else "; ".join(rows)), True
