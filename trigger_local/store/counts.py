"""The run counters' journal: the deltas a write transaction makes to `run_counts` (per status)
and `queue_counts` (per queue, its queued and running runs; issue #17), kept in memory while it
runs and written as sums once, with its COMMIT (issue #13). One class for both stores: SQLite
writes the sums just before its COMMIT (store/sqlite/counts.py), PostgreSQL sends them with it
(store/postgres/pending.py); each store's docstring there says what used to count instead.

A savepoint that rolls back drops the deltas noted since it began (`mark` / `undo`), as does a
transaction that rolls back (`clear`). Reads of the counters inside a transaction add the
deltas not yet written (`statuses`, `queues`)."""

from __future__ import annotations

from collections import Counter

from ..statuses import RUNNING_STATUSES, RunStatus

#: the statuses `queue_counts` keeps (the queue list's queued and running runs), as the
#: stores' delete triggers spell them
QUEUE_STATUSES = RUNNING_STATUSES | {RunStatus.QUEUED}

#: (status, project or '', queue, +1 or -1)
Delta = tuple[str, str, str, int]
#: where a run counts: (status, project, queue)
Place = tuple[str, "str | None", str]


class CountJournal:
    """The counter deltas of one open transaction (on one connection)."""

    def __init__(self) -> None:
        self._journal: list[Delta] = []

    def __bool__(self) -> bool:
        return bool(self._journal)

    def added(self, place: Place) -> None:
        """A run was inserted, counting at `place`."""
        status, project, queue = place
        self._journal.append((str(status), project or "", queue, 1))

    def moved(self, old: Place, new: Place) -> None:
        """A run went from `old` to `new`."""
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

    def split(self, mark: int) -> CountJournal:
        """The deltas noted since `mark`, taken out (PostgreSQL: a part whose SAVEPOINT is
        sent after the writes kept before it, store/postgres/sql.py `open_savepoint`)."""
        tail = CountJournal()
        tail._journal, self._journal = self._journal[mark:], self._journal[:mark]
        return tail

    def extend(self, other: CountJournal) -> None:
        self._journal += other._journal

    def statuses(self) -> Counter[str]:
        out: Counter[str] = Counter()
        for status, _project, _queue, n in self._journal:
            out[status] += n
        return out

    def queues(self) -> Counter[tuple[str, str, str]]:
        out: Counter[tuple[str, str, str]] = Counter()
        for status, project, queue, n in self._journal:
            if status in QUEUE_STATUSES:
                out[(project, queue, status)] += n
        return out

    def sums(self) -> tuple[list[tuple[str, int]], list[tuple[str, str, str, int]]]:
        """The rows to add: (status, n) and (project, queue, status, n); a sum of 0 is left
        out (one row per key: an upsert may not touch a row twice). One pass with plain dicts:
        it runs before every commit (issue #13)."""
        statuses: dict[str, int] = {}
        queues: dict[tuple[str, str, str], int] = {}
        for status, project, queue, n in self._journal:
            statuses[status] = statuses.get(status, 0) + n
            if status in QUEUE_STATUSES:
                key = (project, queue, status)
                queues[key] = queues.get(key, 0) + n
        return ([(s, n) for s, n in sorted(statuses.items()) if n],
                [(p, q, s, n) for (p, q, s), n in sorted(queues.items()) if n])
