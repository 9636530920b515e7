"""Rows that daemons before wrote and today's code only reads: a database written before keeps
them, so the tests write them as those daemons did, in SQL (nothing in trigger_local does)."""

from __future__ import annotations

import inspect
from typing import Any

from trigger_local.store.interface import StoreTx

_SNAPSHOT = ("INSERT INTO snapshots (id, run_id, kind, status, at, description) "
             "VALUES (?,?,?,?,?,?)")


async def insert_snapshot(ops: StoreTx, snapshot_id: str, run_id: str, kind: str, status: str,
                          at: float, description: str = "") -> None:
    """A `snapshots` row, in the transaction `ops` (either store), as a daemon wrote one for
    each change until a change's history row became its event (issue #13;
    engine/history.py shows these rows first)."""
    sql: Any = ops.runs._sql  # type: ignore[attr-defined]  # the area's SQL helper, both stores
    done = sql.run(_SNAPSHOT, (snapshot_id, run_id, kind, status, at, description))
    if inspect.isawaitable(done):  # PostgreSQL's helper is async, SQLite's is not
        await done
