"""The writes of a transaction whose result nobody waits for — its events, a new run or attempt,
a run's waitpoint edges — kept until its commit and sent then with it, in one round trip
(docs/scaling.md: where the time goes). A run's transition is an UPDATE of its row and an event
(which names the snapshot the change made: its one history row): on PostgreSQL each statement is
a round trip, and the event needs no answer. Events go as one statement (their rows as arrays);
the other kept writes (a new run, a new attempt, a run's waitpoint edges) as they are, before it.

Kept writes are sent earlier when a statement of the same transaction reads or deletes their
tables (`PgSql` asks `touches`), so the transaction always sees its own writes. A savepoint
rolled back drops those kept since it began (`mark` / `undo`).

Events: their sequence numbers follow the commit order (the SSE cursor relies on it), so the
statement that draws them first waits for the events' advisory lock, which the transaction then
holds to its commit (store.py). Drawn at the commit, the lock is held for the commit alone, not
from a transaction's first event to its end: two daemons' transactions overlap that much more."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..counts import CountJournal

# unnest yields the rows in the order they were added: their numbers are drawn in that order
_EVENTS = ("evs AS (INSERT INTO events (run_id, type, at, data) SELECT u.* FROM {turn}"
           "unnest(?::text[], ?::text[], ?::double precision[], ?::text[]) AS u)")
_TURN = "turn AS (SELECT pg_advisory_xact_lock(?, ?))"
# the counters' sums (counts.py), in the shard of the transaction's server process (no two
# connections open at once share one), by a function: its statements' plans are kept for the
# session (schema_lists.py, migration 9)
_COUNTS = ("SELECT runs_add_counts(?::text[], ?::bigint[], ?::text[], ?::text[], ?::text[], "
           "?::bigint[])")

#: the tables whose rows may be kept: a statement that names one sends them first
TABLES = ("events",)


@dataclass
class Mark:
    """Where a savepoint began: what was kept, and whether the events' lock was held."""

    events: int
    writes: int
    counts: int
    events_locked: bool


@dataclass
class Pending:
    """Kept event rows, as columns (the statement passes each as one array), and the other
    kept writes."""

    events: list[tuple[Any, ...]] = field(default_factory=list)
    #: other kept writes: (the table each writes, statement with `?` marks, values)
    writes: list[tuple[str, str, Sequence[Any]]] = field(default_factory=list)
    #: the counters' deltas of the runs this transaction inserted or moved (counts.py)
    counts: CountJournal = field(default_factory=CountJournal)
    #: this transaction holds the events' lock (its first events were sent)
    events_locked: bool = False

    def __bool__(self) -> bool:
        return bool(self.events or self.writes or self.counts)

    def clear(self) -> None:
        self.events, self.writes, self.events_locked = [], [], False
        self.counts.clear()

    def write(self, table: str, sql: str, params: Sequence[Any]) -> None:
        """Keep a write of `table` whose answer nobody needs; a statement whose text holds
        `table` (and so reads what the write's triggers wrote too) sends it first."""
        self.writes.append((table, sql, params))

    def event(self, run_id: str | None, type_: str, at: float, data: dict[str, Any]) -> None:
        self.events.append((run_id, type_, at, json.dumps(data)))

    def mark(self) -> Mark:
        return Mark(len(self.events), len(self.writes), self.counts.mark(), self.events_locked)

    def undo(self, mark: Mark) -> None:
        """Forget what was kept since `mark` (its savepoint was rolled back: so was the lock,
        if it was taken since)."""
        del self.events[mark.events:]
        del self.writes[mark.writes:]
        self.counts.undo(mark.counts)
        self.events_locked = mark.events_locked

    def touches(self, sql: str) -> bool:
        """`sql` names a table with kept writes (it must see them: they are sent first)."""
        return any(table in sql for table in TABLES) or \
            any(table in sql for table, _, _ in self.writes)

    def statements(self, events_lock: tuple[int, int], notify: tuple[str, str] | None = None
                   ) -> list[tuple[str, Sequence[Any]]]:
        """The statements that write what was kept, in order, and send `notify` (channel,
        payload), with their values; what was kept is then forgotten."""
        kept: list[tuple[str, Sequence[Any]]] = [(sql, params) for _, sql, params in self.writes]
        self.writes = []
        if self.counts:
            statuses, queues = self.counts.sums()
            self.counts.clear()
            if statuses or queues:
                kept.append((_COUNTS, [*_columns(statuses, 2), *_columns(queues, 4)]))
        if self.events or notify:
            kept.append(self._statement(events_lock, notify))
        return kept

    def _statement(self, events_lock: tuple[int, int],
                   notify: tuple[str, str] | None) -> tuple[str, list[Any]]:
        parts: list[str] = []
        params: list[Any] = []
        if self.events:
            if not self.events_locked:
                parts.append(_TURN)
                params += events_lock
            parts.append(_EVENTS.format(turn="" if self.events_locked else "turn, "))
            params += [list(column) for column in zip(*self.events, strict=True)]
            self.events_locked = True
        main = "SELECT pg_notify(?, ?)" if notify else "SELECT 1"
        params += notify or ()
        self.events = []
        return (f"WITH {', '.join(parts)} {main}" if parts else main), params


def _columns(rows: Sequence[tuple[Any, ...]], width: int) -> list[list[Any]]:
    """`rows` as `width` columns (each sent as one array)."""
    return [list(column) for column in zip(*rows, strict=True)] if rows else [[]] * width
