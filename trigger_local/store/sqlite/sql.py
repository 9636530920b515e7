"""The SQL helpers every SQLite area shares, composed into each area (not inherited): one row,
all rows, a guarded UPDATE, a WHERE built from optional filters (list pages are run_pages.py),
and status groups as `IN` lists built from trigger_local/statuses.py (the store never spells a
status group by hand)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

from ...statuses import (
    FINAL_STATUSES,
    LIVE_STATUSES,
    QUEUED_STATUSES,
    RUNNING_STATUSES,
    RunStatus,
)
from .rows import encode_changes

Params = Sequence[Any] | dict[str, Any]


def sql_in(statuses: Iterable[str]) -> str:
    """`('A','B')` for an `IN` (fixed identifiers, never user input: that goes through bound
    parameters)."""
    return "(" + ",".join(f"'{s}'" for s in sorted(statuses)) + ")"


SQL_RUNNING = sql_in(RUNNING_STATUSES)
SQL_NOT_STARTED = sql_in(QUEUED_STATUSES)
SQL_LIVE = sql_in(LIVE_STATUSES)
SQL_FINAL = sql_in(FINAL_STATUSES)
SQL_RUNNING_OR_QUEUED = sql_in(RUNNING_STATUSES | {RunStatus.QUEUED})
#: a run that keeps its process while it is neither running nor finished: held while it
#: waits, or queued for a slot once its wait completed (runs_worker, migration 20)
SQL_HELD_APART = sql_in({RunStatus.WAITING, RunStatus.QUEUED})


class Sql:
    """Statements on one connection. Each runs to completion on the event loop's thread (no
    thread hop, no await inside): store/sqlite/store.py says why."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def one(self, sql: str, params: Params = ()) -> sqlite3.Row | None:
        cur = self.conn.execute(sql, params)
        try:
            row: sqlite3.Row | None = cur.fetchone()
            return row
        finally:
            cur.close()

    def all(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        cur = self.conn.execute(sql, params)
        try:
            return list(cur.fetchall())
        finally:
            cur.close()

    def run(self, sql: str, params: Params = ()) -> int:
        """Execute a write; returns how many rows it changed."""
        cur = self.conn.execute(sql, params)
        try:
            return cur.rowcount
        finally:
            cur.close()

    def insert(self, sql: str, params: Params = ()) -> int:
        """Execute an INSERT; returns the new row's rowid."""
        cur = self.conn.execute(sql, params)
        try:
            return int(cur.lastrowid or 0)
        finally:
            cur.close()

    def many(self, sql: str, rows: Iterable[Params]) -> None:
        self.conn.executemany(sql, rows).close()

    def update(self, table: str, cls: type, key: str, key_value: Any, changes: dict[str, Any],
               extra_where: str = "", extra: Sequence[Any] = (), key_sql: str = "?") -> bool:
        """`UPDATE table SET changes WHERE key = key_value [extra_where]`: True when a row
        matched (no changes: True at once). `key_sql` is what `key` equals, with one `?` for
        `key_value` (e.g. a subquery from a run's id to its seq)."""
        if not changes:
            return True
        enc = encode_changes(cls, changes, compact=True)
        shape = (table, key, key_sql, extra_where, *enc)
        sql = _UPDATES.get(shape)
        if sql is None:  # written once per shape: the hot path's updates are a handful
            sets = ", ".join(f"{k} = ?" for k in enc)
            sql = f"UPDATE {table} SET {sets} WHERE {key} = {key_sql}{extra_where}"
            if len(_UPDATES) < _UPDATES_KEPT:
                _UPDATES[shape] = sql
        return self.run(sql, (*enc.values(), key_value, *extra)) > 0


#: `Sql.update`'s statements by table, key, condition and column names, in their order (the
#: column names come from the engine's code, never from input: the set of shapes is bounded)
_UPDATES: dict[tuple[str, ...], str] = {}
_UPDATES_KEPT = 512  # a bound all the same: past it, a new shape's text is built per call


class Where:
    """A WHERE clause built from optional filters, with its parameters in order."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.params: list[Any] = []

    def add(self, sql: str, *params: Any) -> None:
        self.parts.append(sql)
        self.params.extend(params)

    def any_of(self, col: str, values: Sequence[str] | None) -> None:
        if values:
            self.add(f"{col} IN ({','.join('?' * len(values))})", *values)

    def one_or_any(self, col: str, value: str | list[str] | None) -> None:
        """`col = value`, or with a list `col IN (...)`; nothing for None."""
        if isinstance(value, list):
            self.any_of(col, value)
        elif value is not None:
            self.add(f"{col} = ?", value)

    def tagged(self, table: str, tags: Sequence[str] | None) -> None:
        """Rows carrying any of `tags` (a JSON array column `tags`)."""
        if tags:
            marks = ",".join("?" * len(tags))
            self.add(f"EXISTS (SELECT 1 FROM json_each({table}.tags) WHERE value IN ({marks}))",
                     *tags)

    def clause(self) -> str:
        return ("WHERE " + " AND ".join(self.parts)) if self.parts else ""
