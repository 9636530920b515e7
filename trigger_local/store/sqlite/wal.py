"""The WAL's checkpoints, in the quiet moments between commits (issue #13).

SQLite checkpoints a WAL database from inside a COMMIT: the commit that finds the WAL past
1,000 pages copies them into the database file and syncs both (`synchronous=NORMAL` syncs at
checkpoints only). A run's transactions write some 18 pages each, so one commit in ~55 — on an
idle daemon, often a trigger's or a start's — took 3–13 ms instead of ~0.3 ms on this
project's machine: most of trigger→start's p99.

Here a thread with a connection of its own runs a PASSIVE checkpoint once EVERY commits have
been made since its last one and no commit came for QUIET_S (sqlite3 lets go of the GIL while
it copies and syncs, and a checkpoint never blocks the writer): on a daemon with gaps between
its runs, the WAL is copied in a gap and starts over before any commit reaches SQLite's own
1,000 pages. Without gaps (a steady stream of runs), the writer checkpoints at 1,000 pages as
SQLite does by default: a thread checkpointing beside a steady stream of commits made them
wait for its syncs, and its checkpoints never found the WAL fully copied, so the WAL never
started over (measured: one-HTTP-trigger-per-run throughput fell by a third). Durability is
SQLite's: a commit is in the WAL when it returns; a checkpoint only moves pages into the
database file.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable

#: commits between the thread's checkpoints: a little more often than SQLite's 1,000 pages would,
#: at some 18 pages a commit, so that the writer seldom gets there first (each syncs the disk)
EVERY = 40
#: how long no commit must have come before the thread checkpoints
QUIET_S = 0.01


class WalCheckpointer:
    """`committed()` after each commit; the thread checkpoints in the next quiet moment."""

    def __init__(self, connect: Callable[[], sqlite3.Connection], every: int = EVERY,
                 quiet_s: float = QUIET_S) -> None:
        self._connect = connect
        self._every, self._quiet_s = every, quiet_s
        self._commits = 0
        self._last_commit = time.monotonic()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self.checkpointed = 0  # checkpoints run, for tests
        self._thread = threading.Thread(target=self._run, name="store-wal-checkpoint",
                                        daemon=True)
        self._thread.start()

    def committed(self) -> None:
        self._last_commit = time.monotonic()
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
                if not self._until_quiet():
                    return
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").close()
                    self.checkpointed += 1
                except sqlite3.Error:
                    pass  # busy or a full disk: the next EVERY commits wake the thread again
        finally:
            conn.close()

    def _until_quiet(self) -> bool:
        """Sleep until no commit came for quiet_s; False once the store closes."""
        while not self._stop.is_set():
            quiet_for = time.monotonic() - self._last_commit
            if quiet_for >= self._quiet_s:
                return True
            if self._stop.wait(self._quiet_s - quiet_for):
                return False
        return False

    def close(self) -> None:
        """Stop the thread (a checkpoint under way finishes first); the last connection to
        close checkpoints what is left."""
        self._stop.set()
        self._wake.set()
        self._thread.join()
