"""WAL checkpoints on a thread of their own, not on the event loop (issue #13).

SQLite copies the write-ahead log back into the database file (a checkpoint) from inside the
COMMIT that makes the log pass `wal_autocheckpoint` pages (1,000 by default). On the daemon
that COMMIT runs on the event loop, and the checkpoint reads the log, writes every page it
holds and syncs the file: 5–40 ms in which no request, completion or dispatcher round runs,
once every ~40 commits of the hot path (measured: the top 1 % of commits were a third of all
commit time). Here the writer does no checkpoint (`wal_autocheckpoint=0`), and a thread with
its own connection runs `PRAGMA wal_checkpoint(PASSIVE)` — which waits for no reader or writer
— every `EVERY_COMMITS` commits and at most `IDLE_S` after the last one; sqlite3 lets go of the
GIL while it works. Durability is unchanged: a commit is in the log before it is acknowledged
either way (synchronous=NORMAL; the checkpoint's sync is what it always was)."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Callable

import structlog

#: commits between two checkpoints (~25 pages each on the hot path: ~the default's 1,000)
EVERY_COMMITS = 40
#: a checkpoint after the last commit of a burst, at most this much later
IDLE_S = 1.0


class Checkpointer:
    """Checkpoints of one database file; `committed()` after each COMMIT (on the loop: an
    integer increment, and every `EVERY_COMMITS` a wake-up), `close()` at the end."""

    def __init__(self, connect: Callable[[], sqlite3.Connection]) -> None:
        self._conn = connect()
        self._since = 0  # commits since the thread was last woken
        self._pending = False  # commits the thread has not checkpointed yet
        self._wake = threading.Event()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="sqlite-checkpoint", daemon=True)
        self._thread.start()

    def committed(self) -> None:
        self._pending = True
        self._since += 1
        if self._since >= EVERY_COMMITS:
            self._since = 0
            self._wake.set()

    def close(self) -> None:
        """Stop the thread (a checkpoint under way is finished first) and close its connection;
        the last connection to close checkpoints what is left, as before."""
        self._stop = True
        self._wake.set()
        self._thread.join()
        self._conn.close()

    def _run(self) -> None:
        while not self._stop:
            self._wake.wait(IDLE_S)
            self._wake.clear()
            if self._stop or not self._pending:
                continue
            self._pending = False
            try:
                self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            except sqlite3.Error as exc:  # a full disk, say: the log keeps it; try again later
                with contextlib.suppress(Exception):
                    structlog.get_logger().warning("WAL checkpoint failed", error=str(exc))
