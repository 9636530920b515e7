"""Reads that may take long, off the event loop (issue #17).

Most store calls are index lookups of a few rows and run on the loop's thread (store.py says
why). A list page may not be: a filter the indexes cannot serve (`search`, a rare combination
of filters) reads rows until its page is full, and at a million runs that can take seconds;
on the loop it would stall dispatch and every other request meanwhile. Such reads run here: a
small pool of threads, each with its own read-only sqlite3 connection (sqlite3 releases the GIL
while a statement runs, so the loop goes on). Each statement sees the latest committed state,
as on the loop's reader.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from ...errors import DaemonStoppingError
from .sql import Sql

T = TypeVar("T")


class OffLoop:
    """`await run(fn)`: `fn(sql)` on a reader thread's own connection."""

    def __init__(self, connect: Callable[[], sqlite3.Connection], threads: int = 2) -> None:
        self._connect = connect
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="store-read")
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._guard = threading.Lock()
        self._closed = False

    async def run(self, fn: Callable[[Sql], T]) -> T:
        if self._closed:
            raise DaemonStoppingError("The daemon is stopping: retry once it runs again")
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, self._call, fn)
        except sqlite3.OperationalError:
            if self._closed:  # interrupted by close()
                raise DaemonStoppingError("The daemon is stopping: retry once it runs "
                                          "again") from None
            raise

    def _call(self, fn: Callable[[Sql], T]) -> T:
        sql: Sql | None = getattr(self._local, "sql", None)
        if sql is None:
            conn = self._connect()
            conn.execute("PRAGMA query_only=ON").close()
            with self._guard:
                self._conns.append(conn)
            sql = self._local.sql = Sql(conn)
        return fn(sql)

    def close(self) -> None:
        """Interrupt the reads under way (their callers get DaemonStoppingError), wait for the
        threads, close their connections."""
        self._closed = True
        with self._guard:
            for conn in self._conns:
                conn.interrupt()
        self._pool.shutdown(wait=True, cancel_futures=True)
        with self._guard:
            for conn in self._conns:
                conn.close()
            self._conns.clear()
