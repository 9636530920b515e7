"""The WAL's checkpoints, off the event loop (issue #13).

SQLite checkpoints a WAL database from inside a COMMIT by default: the commit that finds the
WAL past 1,000 pages copies them into the database file and syncs both (`synchronous=NORMAL`
syncs at checkpoints only). A run's transactions write some 18 pages each, so one commit in
~55 — a trigger's or a start's among them — took 3–13 ms instead of ~0.3 ms on this project's
machine: that was most of trigger→start's p99. Here a thread with a connection of its own runs
a PASSIVE checkpoint every EVERY commits (sqlite3 lets go of the GIL while it copies and
syncs, and a checkpoint never blocks the writer), so a commit is only its own work; it may
still wait for a sync under way (the disk's), but only when the two meet. The writer
checkpoints itself only once the WAL passed BACKSTOP_PAGES: the thread fell behind (in a long
burst of writes its checkpoints never find the WAL fully copied, so the WAL never starts
over). Nothing changes for durability: a commit is in the WAL when it returns, as before; a
checkpoint only moves pages into the database file, on its own time instead of a request's.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable

#: commits between checkpoints: about as often as SQLite's own 1,000-page default would, with
#: a run's transactions writing some 18 pages each (a checkpoint syncs the disk: more often
#: would cost more, and a commit that meets a sync under way waits for it)
EVERY = 50
#: the writer's own `wal_autocheckpoint`: SQLite's default is 1,000 pages
BACKSTOP_PAGES = 10_000


class WalCheckpointer:
    """`committed()` after each commit; the thread checkpoints shortly after."""

    def __init__(self, connect: Callable[[], sqlite3.Connection], every: int = EVERY) -> None:
        self._connect = connect
        self._every = every
        self._commits = 0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self.checkpointed = 0  # checkpoints run, for tests
        self._thread = threading.Thread(target=self._run, name="store-wal-checkpoint",
                                        daemon=True)
        self._thread.start()

    def committed(self) -> None:
        self._commits += 1
        if self._commits >= self._every:
            self._commits = 0
            self._wake.set()

    def _run(self) -> None:
        conn = self._connect()
        try:
            while True:
                self._wake.wait()
                self._wake.clear()
                if self._stop.is_set():
                    return
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").close()
                    self.checkpointed += 1
                except sqlite3.Error:
                    pass  # busy or a full disk: the next commit wakes the thread again
        finally:
            conn.close()

    def close(self) -> None:
        """Stop the thread (a checkpoint under way finishes first); the last connection to
        close checkpoints what is left."""
        self._stop.set()
        self._wake.set()
        self._thread.join()
