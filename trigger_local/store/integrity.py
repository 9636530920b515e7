"""`PRAGMA quick_check` of a database file before the store opens it, bounded in time."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

#: problems quick_check lists at most (the first says enough)
CHECK_ROWS = 5


def quick_check(db_path: Path, budget_s: float) -> tuple[str | None, bool]:
    """(what is wrong with the database at `db_path` or None, whether the check finished).

    A progress handler stops the check after `budget_s` seconds: then it is (None, False), since
    a big database is not a damaged one, and the daemon must start in bounded time."""
    deadline = time.monotonic() + budget_s
    try:
        conn = sqlite3.connect(str(db_path), isolation_level=None)
    except sqlite3.Error as exc:
        return str(exc), True
    try:
        conn.set_progress_handler(lambda: time.monotonic() > deadline, 1000)
        rows = [str(r[0]) for r in conn.execute(f"PRAGMA quick_check({CHECK_ROWS})").fetchall()]
    except sqlite3.OperationalError as exc:
        return (None, False) if "interrupt" in str(exc) else (str(exc), True)
    except sqlite3.Error as exc:
        return str(exc), True
    finally:
        conn.close()
    return (None if rows == ["ok"] else "; ".join(rows)), True
