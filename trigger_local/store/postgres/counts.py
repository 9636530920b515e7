"""The run counters' share of a transaction on PostgreSQL (`run_counts` per status,
`queue_counts` per queue's queued and running runs: schema_lists.py): noted in the
transaction's journal (store/counts.py `CountJournal`, the one SQLite uses too) and written once,
with its COMMIT (pending.py).

Until migration 9, triggers counted every run inserted or moved: two functions and up to four
upserts per status change, in the server, in the statement the engine waits for; a no-op run
makes four such changes (its insert, DEQUEUED, EXECUTING, COMPLETED). Now `PgRuns.insert` and
`PgRuns.update` note the deltas in the journal, and the commit's round trip writes their sums:
one row per status and queue the transaction touched. A deletion still counts by trigger
(retention deletes in bulk, outside the hot path, and SQL written by hand stays counted)."""

from __future__ import annotations

#: the run columns whose change moves a run between counters
COUNTED = frozenset({"status", "project", "queue"})
