"""A trigger that starts its run reads ahead (issue #14: trigger→start within 1.5× of SQLite).

A trigger that starts its new run at once (engine/starting.py; on PostgreSQL serializable and
in the dequeues' turn, store.py) reads its run's queue, keeps the run's INSERT for the commit,
and then runs the dispatcher's dequeue for one run: the six reads every dequeue starts with
(dequeue_reads.py) and the page of queued runs of each queue that has some. Each answered
statement is a round trip. But in a serializable transaction every read sees the same
snapshot, so reading the dequeue's six reads *with* the queue's row, in one call of a
temporary function (`START_READ`, made on the serializable transactions' connection), sees
what reading them later would — as long as the transaction has written nothing they read in
between. What it writes in between, in the path this is for, is the new run's INSERT: kept
(pending.py), not sent. So the store answers the dequeue's reads from what it read ahead,
adding the queues of the QUEUED runs it inserted since (`Ahead.queued_queues`), and answers
the page of a queue that had no QUEUED run at the snapshot from those runs alone
(`Ahead.page`): the database's page there is empty, and a run this transaction inserted is
seen by no other, so it needs no row lock. The run's INSERT, its start's UPDATE and attempt
then go with the COMMIT: three round trips (the turn, this read, the commit), where the same
statements in the order the engine asks cost six.

Nothing the dequeue relies on changes: its reads are of the snapshot taken once the turn is
held (the turn's LOCK goes first, alone: a LOCK takes no snapshot), exactly as they would be
read later; the serializable checks of the trigger and of the dequeue are the same reads. What
was read ahead is forgotten — and the dequeue reads the database as before — once anything
else is sent or kept (`PgSql.ahead_valid`): a statement sent, a write kept of a table those
reads read other than a run's INSERT (`changes`), a part undone. A page of a queue that had
QUEUED runs at the snapshot is read from the database (the kept INSERT is sent first: the
page must see it). A role without the `TEMP` privilege reads in the engine's order (store.py
`_held`)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ...statuses import RunStatus
from ..models import Run
from ..sqlite.rows import from_row, to_row
from . import dequeue_reads
from .pending import NEW_RUN

#: the queue's read a trigger starts with (catalog.py `PgQueues.get`)
QUEUE = "SELECT * FROM queues WHERE (project = ? AND name = ?) OR id = ?"
#: the queue's row and the dequeue's six reads, as one JSON object, in one call (plpgsql:
#: the statement's plan is kept for the session)
START_READ = f"""CREATE OR REPLACE FUNCTION pg_temp.trigger_local_start_read(TEXT, TEXT)
    RETURNS TEXT LANGUAGE plpgsql STABLE {dequeue_reads.PLAN} AS $$
BEGIN
    RETURN (SELECT json_build_object('queue', (SELECT row_to_json(q) FROM queues q
        WHERE (q.project = $1 AND q.name = $2) OR q.id = $2 LIMIT 1), {dequeue_reads.FIELDS})
        ::text);
END $$"""
CALL = "SELECT pg_temp.trigger_local_start_read($1, $2)"


@dataclass
class Ahead:
    """What a trigger's transaction read ahead (the module docstring)."""

    #: the dequeue's reads, by statement text, each answered once
    answers: dict[str, list[Any]]
    #: the queues that had QUEUED runs at the snapshot
    queued: set[tuple[str | None, str]]
    #: statements the transaction had sent when it read ahead (`PgSql.sent`)
    sent: int
    #: the runs it inserted (kept, not sent) since
    runs: list[Run] = field(default_factory=list)

    def inserted(self, run: Run) -> None:
        """`run` was inserted (kept): as its INSERT writes it, whatever is done to the object
        the engine holds."""
        self.runs.append(from_row(Run, to_row(run)))

    def answer(self, sql: str) -> list[Any] | None:
        rows = self.answers.pop(sql, None)
        if rows is None or sql != dequeue_reads.QUEUED_QUEUES:
            return rows
        found = {(r["project"], r["queue"]) for r in rows}
        return rows + [{"project": p, "queue": q} for p, q in
                       dict.fromkeys((r.project, r.queue) for r in self.runs
                                     if r.status == RunStatus.QUEUED) if (p, q) not in found]

    def page(self, project: str, queue: str, limit: int, per_key: int | None) -> list[Run] | None:
        """`PgRuns.queued`'s answer for a queue that had no QUEUED run at the snapshot: the
        runs inserted since (new runs: held by no process); None: read the database."""
        if (project, queue) in self.queued:
            return None
        mine = sorted((r for r in self.runs if r.status == RunStatus.QUEUED
                       and r.project == project and r.queue == queue and not r.worker_id),
                      key=lambda r: (r.queued_at, r.id))
        if per_key is not None:
            ranks: dict[str | None, int] = {}
            ranked = []
            for run in mine:
                ranks[run.concurrency_key] = ranks.get(run.concurrency_key, 0) + 1
                if ranks[run.concurrency_key] <= per_key:
                    ranked.append(run)
            mine = ranked
        # as read back from the database: the caller moves its own copy
        return [from_row(Run, to_row(r)) for r in mine[:max(limit, 0)]]


def changes(table: str) -> bool:
    """Whether a write of `table`, kept, may change what was read ahead: a table the dequeue's
    reads name, but for a new run's INSERT (kept under "run", which `Ahead` counts in)."""
    return table != NEW_RUN and any(table in sql for sql in dequeue_reads.READS)


def read(text: str, sent: int) -> tuple[dict[str, Any] | None, Ahead]:
    """`START_READ`'s answer: the queue's row (or None) and what the dequeue will ask."""
    found = json.loads(text)
    row = found.pop("queue")
    answers = dequeue_reads.answers_of(found)
    queued = {(r["project"], r["queue"]) for r in answers[dequeue_reads.QUEUED_QUEUES]}
    return row, Ahead(answers, queued, sent)
