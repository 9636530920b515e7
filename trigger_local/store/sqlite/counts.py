"""The run counters' share of a status change (`run_counts` per status, `queue_counts` per
queue's queued and running runs; issue #17), noted in the transaction's journal
(store/counts.py `CountJournal`) and written once, just before its COMMIT (issue #13).

A status change (`SqliteRuns.update`) used to fire two triggers of four statements on every
row; a no-op run makes two such changes, and a group commit of n runs wrote the same few
counter rows 8n times. Now each change notes its deltas in the journal, and the transaction
writes the sums (`write_counts`): one upsert per status and queue it touched, in the same
transaction, so the counters stay exact (`count_by_status` is what the rows say). An insert
(`SqliteRuns.insert`, migration 20) notes its +1 the same way: its two triggers wrote the same
counter rows once per run of a batch. A delete still counts by trigger (retention deletes in
bulk); no code inserts a run or changes its status but `SqliteRuns`. SQL written by hand that
inserts runs (a test's seed) must add them to the counters itself."""

from __future__ import annotations

from ..counts import CountJournal
from .sql import Sql

_STATUS_SQL = ("INSERT INTO run_counts (status, n) VALUES (?, ?) "
               "ON CONFLICT (status) DO UPDATE SET n = n + excluded.n")
_QUEUE_SQL = ("INSERT INTO queue_counts (project, queue, status, n) VALUES (?, ?, ?, ?) "
              "ON CONFLICT (project, queue, status) DO UPDATE SET n = n + excluded.n")


def write_counts(sql: Sql, journal: CountJournal) -> None:
    """Write the journal's sums (called before COMMIT) and empty it; a sum of 0 writes
    nothing."""
    if not journal:
        return
    statuses, queues = journal.sums()
    journal.clear()
    if statuses:
        sql.many(_STATUS_SQL, statuses)
    if queues:
        sql.many(_QUEUE_SQL, queues)
