"""The run counters' share of a status change (`run_counts` per status, `queue_counts` per
queue's queued and running runs; issue #17), kept in memory while a write transaction runs and
written once, just before its COMMIT (issue #13).

A status change (`SqliteRuns.update`) used to fire two triggers of four statements on every
row; a no-op run makes two such changes, and a group commit of n runs wrote the same few
counter rows 8n times. Now each change notes its deltas here, and the transaction writes the
sums: one upsert per status and queue it touched, in the same transaction, so the counters stay
exact (`count_by_status` is what the rows say). An insert or a delete still counts by trigger
(one statement each, and SQL written by hand — tests, scripts — keeps them right); no code
changes a run's status but `SqliteRuns.update`.

A savepoint that rolls back drops the deltas noted since it began (`mark` / `undo`), as does a
transaction that rolls back (`clear`). Reads of the counters through the writer (inside a
transaction) add the deltas not yet written (`pending_statuses`, `pending_queues`)."""

from __future__ import annotations

from collections import Counter

from ...statuses import RUNNING_STATUSES, RunStatus
from .sql import Sql

#: the statuses `queue_counts` keeps (the queue list's queued and running runs), as the
#: insert and delete triggers spell them
QUEUE_STATUSES = RUNNING_STATUSES | {RunStatus.QUEUED}
_STATUS_SQL = ("INSERT INTO run_counts (status, n) VALUES (?, ?) "
               "ON CONFLICT (status) DO UPDATE SET n = n + excluded.n")
_QUEUE_SQL = ("INSERT INTO queue_counts (project, queue, status, n) VALUES (?, ?, ?, ?) "
              "ON CONFLICT (project, queue, status) DO UPDATE SET n = n + excluded.n")

#: (status, project or '', queue, +1 or -1)
Delta = tuple[str, str, str, int]


class CountChanges:
    """The counter deltas of the open transaction on one connection (the writer's)."""

    def __init__(self, sql: Sql) -> None:
        self._sql = sql
        self._journal: list[Delta] = []

    def moved(self, old: tuple[str, str | None, str], new: tuple[str, str | None, str]) -> None:
        """A run went from (status, project, queue) `old` to `new`."""
        if old == new:
            return
        (old_status, old_project, old_queue), (status, project, queue) = old, new
        self._journal.append((str(old_status), old_project or "", old_queue, -1))
        self._journal.append((str(status), project or "", queue, 1))

    def mark(self) -> int:
        return len(self._journal)

    def undo(self, mark: int) -> None:
        del self._journal[mark:]

    def clear(self) -> None:
        self._journal.clear()

    def pending_statuses(self) -> Counter[str]:
        out: Counter[str] = Counter()
        for status, _project, _queue, n in self._journal:
            out[status] += n
        return out

    def pending_queues(self) -> Counter[tuple[str, str, str]]:
        out: Counter[tuple[str, str, str]] = Counter()
        for status, project, queue, n in self._journal:
            if status in QUEUE_STATUSES:
                out[(project, queue, status)] += n
        return out

    def flush(self) -> None:
        """Write the sums (called before COMMIT); a sum of 0 writes nothing."""
        if not self._journal:
            return
        statuses, queues = self.pending_statuses(), self.pending_queues()
        self._journal.clear()
        rows = [(s, n) for s, n in statuses.items() if n]
        if rows:
            self._sql.many(_STATUS_SQL, rows)
        queue_rows = [(p, q, s, n) for (p, q, s), n in queues.items() if n]
        if queue_rows:
            self._sql.many(_QUEUE_SQL, queue_rows)
