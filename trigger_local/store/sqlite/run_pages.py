"""One page of the runs list, read through one index in the list's order (issue #17).

A list is newest first: `ORDER BY created_at DESC, seq DESC` (`seq`, the runs' integer key,
orders the runs made at one instant as they were made). Each filter column has an index
`(column, created_at)`, which ends with the rowid, `seq` (schema_compact.py, migration 18), and
tags have `run_tags (tag, run_created_at, run_seq)`. A page picks one filter to drive it — the
one most likely to be narrow, in `_DRIVERS`' order — and reads that index from the cursor on,
checking the other filters on each row, until the page is full: it never sorts the matches, so
a page of 25 costs about 25 rows whatever the table holds. A filter with several values
(`status IN (A, B)`) reads each value's index range and merges the pages (an `IN` on the
leading column would make SQLite sort every match). The statement names its index (`INDEXED
BY`): without statistics SQLite may otherwise pick an index that does not serve the ORDER BY.

`statements` is kept apart from running them so that tests can EXPLAIN the exact SQL a page
runs (tests/sqlite_plans.py)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..models import Run
from .rows import columns
from .sql import Sql, Where

#: (column, its list index), the narrowest kind of filter first
_DRIVERS = (
    ("idempotency_key", "runs_key_created"),
    ("batch_id", "runs_batch_created"),
    ("parent_run_id", "runs_parent_created"),
    ("schedule_id", "runs_schedule_created"),
    ("tags", ""),  # run_tags
    ("task_id", "runs_task_created"),
    ("version_id", "runs_version_created"),
    ("queue", "runs_queue_created"),
    ("status", "runs_status_created"),
    ("project", "runs_project"),
)
Cursor = tuple[float, Any]  # (created_at, the tie-breaker: a run's seq, a waitpoint's id)
_RUN_COLUMNS = list(columns(Run))


@dataclass
class RunFilter:
    """What `RunReader.page` filters on; a list means any of its values."""

    values: dict[str, list[str]] = field(default_factory=dict)  # column → any of
    machines: list[str] = field(default_factory=list)
    created_from: float | None = None
    created_to: float | None = None
    is_test: bool | None = None
    search: str | None = None

    def set(self, column: str, value: str | Sequence[str] | None) -> None:
        if value is None:
            return
        values = [value] if isinstance(value, str) else list(value)
        if values:
            self.values[column] = values


_COLUMN_OF = {"statuses": "status", "task_ids": "task_id", "tags": "tags", "queue": "queue",
              "version_id": "version_id", "batch_id": "batch_id",
              "parent_run_id": "parent_run_id", "schedule_ids": "schedule_id",
              "projects": "project", "idempotency_key": "idempotency_key"}


def run_filter(*, machines: Sequence[str] | None = None, created_from: float | None = None,
               created_to: float | None = None, is_test: bool | None = None,
               search: str | None = None, **values: str | Sequence[str] | None) -> RunFilter:
    """`RunReader.page`'s keyword filters (but the cursor and limit) as a RunFilter."""
    f = RunFilter(machines=list(machines or []), created_from=created_from,
                  created_to=created_to, is_test=is_test, search=search)
    for name, value in values.items():
        f.set(_COLUMN_OF[name], value)
    return f


def bounded(f: RunFilter) -> bool:
    """Whether a page reads about `limit` rows per value of its driving filter whatever the
    table holds: no filter is left to check row by row. Such a page runs on the loop (a thread
    hop costs more than it, off_loop.py); any other may read far more rows, so it does not."""
    driver = next((c for c, _ in _DRIVERS if c in f.values), "")
    return not _residual(f, driver).parts


def statements(f: RunFilter, cursor: Cursor | None, ascending: bool,
               limit: int) -> list[tuple[str, list[Any]]]:
    """The SELECTs that make one page: one per value of the driving filter, each already in
    the page's order and at most `limit` rows long."""
    driver, index = next(((c, i) for c, i in _DRIVERS if c in f.values), ("", "runs_created"))
    cols = ", ".join(f"runs.{c}" for c in ["seq", *_RUN_COLUMNS])
    order = "ASC" if ascending else "DESC"
    out: list[tuple[str, list[Any]]] = []
    each: list[str | None] = list(f.values.get(driver, [])) or [None]
    for value in each:
        q = _residual(f, driver)
        if driver == "tags":
            head = f"SELECT {cols} FROM run_tags t CROSS JOIN runs ON runs.seq = t.run_seq"
            q.parts.insert(0, "t.tag = ?")
            q.params.insert(0, value)
            keys = ("t.run_created_at", "t.run_seq")
        else:
            head = f"SELECT {cols} FROM runs INDEXED BY {index}"
            if driver:
                q.parts.insert(0, f"runs.{driver} = ?")
                q.params.insert(0, value)
            keys = ("runs.created_at", "runs.seq")
        _bound(q, keys, f, cursor, ascending)
        out.append((f"{head} {q.clause()} ORDER BY {keys[0]} {order}, {keys[1]} {order} "
                    "LIMIT ?", [*q.params, limit]))
    return out


def page_rows(sql: Sql, f: RunFilter, after: str | None, before: str | None,
              limit: int) -> list[dict[str, Any]]:
    """One page, newest first: older than the run `after`, or the `limit` runs just newer
    than the run `before`. A cursor run that no longer exists gives an empty page. Each row
    has the Run's columns."""
    cursor: Cursor | None = None
    if after or before:
        row = sql.one("SELECT created_at, seq FROM runs WHERE id = ?", (after or before,))
        if row is None:
            return []
        cursor = (row["created_at"], row["seq"])
    ascending = bool(before) and not after
    rows = merged(sql, statements(f, cursor, ascending, limit), ascending, limit, tie="seq")
    return [{c: r[c] for c in _RUN_COLUMNS} for r in rows]


def merged(sql: Sql, texts: list[tuple[str, list[Any]]], ascending: bool,
           limit: int, tie: str = "id") -> list[sqlite3.Row]:
    """The first `limit` rows of the statements' results together (each already ordered by
    created_at and `tie`, and limited; a row two of them found counts once), newest first."""
    rows: dict[Any, sqlite3.Row] = {}
    for text, params in texts:
        for r in sql.all(text, params):
            rows[r[tie]] = r
    ordered = sorted(rows.values(), key=lambda r: (r["created_at"], r[tie]),
                     reverse=not ascending)[:limit]
    return ordered if not ascending else list(reversed(ordered))


def token_statements(type_: str, statuses: list[str], tags: Sequence[str] | None,
                     idempotency_key: str | None, created: tuple[float | None, float | None],
                     cursor: Cursor | None, ascending: bool, limit: int,
                     project: str | None = None) -> list[tuple[str, list[Any]]]:
    """The waitpoint list's SELECTs (the token list), like the runs list's: driven by the
    key (`waitpoints_key`: a key names one token or a few, so those are sorted), else by each
    tag (`waitpoint_tags`), else by each status (`waitpoints_type_status`), else by type."""
    order = "ASC" if ascending else "DESC"
    f = RunFilter(created_from=created[0], created_to=created[1])
    drivers: list[tuple[str, str | None]] = (
        [("key", idempotency_key)] if idempotency_key
        else [("tag", t) for t in tags] if tags
        else [("status", s) for s in statuses] if statuses else [("type", None)])
    out: list[tuple[str, list[Any]]] = []
    for driver, value in drivers:
        q = Where()
        q.add("w.type = ?", type_)
        if project is not None:  # a project key's list: checked on each row
            q.add("w.project = ?", project)
        keys = ("w.created_at", "w.id")
        head = "SELECT w.* FROM waitpoints w INDEXED BY waitpoints_type_created"
        if driver == "key":
            head = "SELECT w.* FROM waitpoints w INDEXED BY waitpoints_key"
            q.add("w.idempotency_key = ?", value)
        elif driver == "tag":
            head = ("SELECT w.* FROM waitpoint_tags t CROSS JOIN waitpoints w "
                    "ON w.id = t.waitpoint_id")
            q.add("t.tag = ?", value)
            keys = ("t.waitpoint_created_at", "t.waitpoint_id")
        elif driver == "status":
            head = "SELECT w.* FROM waitpoints w INDEXED BY waitpoints_type_status"
        if driver == "status":
            q.add("w.status = ?", value)
        else:
            q.any_of("w.status", statuses)
        _bound(q, keys, f, cursor, ascending)
        out.append((f"{head} {q.clause()} ORDER BY {keys[0]} {order}, {keys[1]} {order} "
                    "LIMIT ?", [*q.params, limit]))
    return out


def _residual(f: RunFilter, driver: str) -> Where:
    """Every filter but the driving one, checked on each row the index yields."""
    q = Where()
    for column, values in f.values.items():
        if column == driver:
            continue
        if column == "tags":
            q.tagged("runs", values)
        else:
            q.any_of(f"runs.{column}", values)
    q.any_of("runs.machine", f.machines)
    if f.is_test is not None:
        q.add("runs.is_test = ?", int(f.is_test))
    if f.search:
        q.add("(runs.id LIKE ? OR runs.task_id LIKE ? OR runs.tags LIKE ?)",
              *[f"%{f.search}%"] * 3)
    return q


def _bound(q: Where, keys: tuple[str, str], f: RunFilter, cursor: Cursor | None,
           ascending: bool) -> None:
    """The created-at window and the cursor, on the driving index's own columns so that they
    bound its range. SQLite bounds a range by one term per side: where the cursor and the
    window bound the same side, only the tighter one is written (both would leave the cursor
    as a per-row check, and a deep page would read the window from its end)."""
    low, high = f.created_from, f.created_to
    if cursor is not None:
        if ascending and low is not None and cursor[0] < low:
            cursor = None  # every row of the window is after the cursor
        elif not ascending and high is not None and cursor[0] > high:
            cursor = None
        elif ascending:
            low = None  # the cursor is in the window (or past it): rows after it are too
        else:
            high = None
    if low is not None:
        q.add(f"{keys[0]} >= ?", low)
    if high is not None:
        q.add(f"{keys[0]} <= ?", high)
    if cursor is not None:
        q.add(f"({keys[0]}, {keys[1]}) {'>' if ascending else '<'} (?, ?)", *cursor)
