"""A plain sqlite3 connection behind the small async surface `Ops` uses (`execute` awaitable or
as an async context manager, `executemany`, cursors with async fetches), so the writer runs on
the event loop's thread without a thread hop per statement."""

from __future__ import annotations

import sqlite3
from collections.abc import Generator, Iterable
from typing import Any


class SyncCursor:
    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor
        self.rowcount = cursor.rowcount
        self.lastrowid = cursor.lastrowid

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()


class _Executed:
    """The result of `execute`: await it for the cursor, or `async with` it."""

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = SyncCursor(cursor)

    def __await__(self) -> Generator[Any, None, SyncCursor]:
        return self._ready().__await__()

    async def _ready(self) -> SyncCursor:
        return self._cursor

    async def __aenter__(self) -> SyncCursor:
        return self._cursor

    async def __aexit__(self, *exc: object) -> None:
        self._cursor._cursor.close()


class SyncConnection:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def execute(self, sql: str, params: Any = ()) -> _Executed:
        return _Executed(self._conn.execute(sql, params))

    @property
    def in_transaction(self) -> bool:
        return self._conn.in_transaction

    async def executemany(self, sql: str, rows: Iterable[Any]) -> SyncCursor:
        return SyncCursor(self._conn.executemany(sql, rows))

    async def close(self) -> None:
        self._conn.close()
