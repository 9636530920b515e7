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
from collections.abc import Callable, Sequence
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
#: the table name a kept run INSERT is kept under (runs.py), which a `Fold` may write into
NEW_RUN = "run"


@dataclass(frozen=True, slots=True)
class Fold:
    """A kept UPDATE of a run this transaction inserted, whose INSERT is still kept too: sent,
    it is written into the INSERT instead (`into`: the INSERT's statement and values with the
    UPDATE's applied; None when its compare-and-set would not hold there). One row version and
    one set of index entries instead of two (a trigger that starts its run: start_reads.py)."""

    run_id: str
    into: Callable[[str, Sequence[Any]], tuple[str, list[Any]] | None]


@dataclass
class Mark:
    """Where a savepoint began: what was kept, and whether the events' lock was held."""

    events: int
    writes: int
    counts: int
    events_locked: bool


@dataclass
class Held:
    """A part's SAVEPOINT, held back until one of its statements is sent (view.py
    `PgView.savepoint`); `mark`: what was kept when the part began (once the SAVEPOINT is
    sent: when it was sent, sql.py `open_savepoint`)."""

    name: str
    mark: Mark


@dataclass
class Pending:
    """Kept event rows, as columns (the statement passes each as one array), and the other
    kept writes."""

    events: list[tuple[Any, ...]] = field(default_factory=list)
    #: other kept writes: (the table each writes, statement with `?` marks, values, and for
    #: an UPDATE of a run inserted here, how it folds into the INSERT)
    writes: list[tuple[str, str, Sequence[Any], Fold | None]] = field(default_factory=list)
    #: the counters' deltas of the runs this transaction inserted or moved (counts.py)
    counts: CountJournal = field(default_factory=CountJournal)
    #: this transaction holds the events' lock (its first events were sent)
    events_locked: bool = False

    def __bool__(self) -> bool:
        return bool(self.events or self.writes or self.counts)

    def clear(self) -> None:
        self.events, self.writes, self.events_locked = [], [], False
        self.counts.clear()

    def write(self, table: str, sql: str, params: Sequence[Any],
              fold: Fold | None = None) -> None:
        """Keep a write of `table` whose answer nobody needs; a statement whose text holds
        `table` (and so reads what the write's triggers wrote too) sends it first."""
        self.writes.append((table, sql, params, fold))

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

    def split(self, mark: Mark) -> Pending:
        """What was kept since `mark`, taken out (sql.py `open_savepoint`: what a part kept
        goes after its SAVEPOINT, what was kept before it, before)."""
        part = Pending(self.events[mark.events:], self.writes[mark.writes:],
                       self.counts.split(mark.counts))
        del self.events[mark.events:]
        del self.writes[mark.writes:]
        return part

    def restore(self, part: Pending) -> None:
        """Keep again what `split` took out (after what was sent meanwhile)."""
        self.events += part.events
        self.writes += part.writes
        self.counts.extend(part.counts)

    def touches(self, sql: str) -> bool:
        """`sql` names a table with kept writes (it must see them: they are sent first)."""
        return any(table in sql for table in TABLES) or \
            any(table in sql for table, _, _, _ in self.writes)

    def statements(self, events_lock: tuple[int, int], notify: tuple[str, str] | None = None
                   ) -> list[tuple[str, Sequence[Any]]]:
        """The statements that write what was kept, in order, and send `notify` (channel,
        payload), with their values; what was kept is then forgotten."""
        kept = _folded(self.writes)
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


def _folded(writes: Sequence[tuple[str, str, Sequence[Any], Fold | None]]
            ) -> list[tuple[str, Sequence[Any]]]:
    """The kept writes' statements, each UPDATE that folds into a kept INSERT written into it
    (`Fold`); the INSERT stays where it was, so what was sent before it still is."""
    kept: list[tuple[str, Sequence[Any]]] = []
    inserted: dict[Any, int] = {}  # a new run's id: where its INSERT is in `kept`
    for table, sql, params, fold in writes:
        at = None if fold is None else inserted.get(fold.run_id)
        if fold is not None and at is not None:
            merged = fold.into(*kept[at])
            if merged is not None:
                kept[at] = merged
                continue
        if table == NEW_RUN:
            inserted[params[0]] = len(kept)
        kept.append((sql, params))
    return kept
