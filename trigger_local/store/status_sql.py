"""Status groups as SQL `IN` lists, built from trigger_local/statuses.py so the store never
spells a status group by hand."""

from __future__ import annotations

from collections.abc import Iterable

from ..statuses import LIVE_STATUSES, QUEUED_STATUSES, RUNNING_STATUSES


def sql_in(statuses: Iterable[str]) -> str:
    """`('A','B')` for an `IN` (fixed identifiers, never user input: that goes through bound
    parameters)."""
    return "(" + ",".join(f"'{s}'" for s in sorted(statuses)) + ")"


SQL_RUNNING = sql_in(RUNNING_STATUSES)
SQL_NOT_STARTED = sql_in(QUEUED_STATUSES)
SQL_LIVE = sql_in(LIVE_STATUSES)
SQL_RUNNING_OR_QUEUED = sql_in(RUNNING_STATUSES | {"QUEUED"})
