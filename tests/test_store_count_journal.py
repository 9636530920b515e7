"""One counter journal (store/counts.py `CountJournal`) for both stores: the deltas a write
transaction makes to the run counters, dropped back to a savepoint's mark or cleared, summed for
the one write before (SQLite) or with (PostgreSQL) the COMMIT. tests/test_store_counts.py
checks the counters it keeps on both stores."""

from __future__ import annotations

import random
from pathlib import Path

from trigger_local.statuses import RunStatus
from trigger_local.store.counts import CountJournal
from trigger_local.store.postgres.pending import Pending
from trigger_local.store.sqlite.store import SqliteStore

Q, E, C = RunStatus.QUEUED, RunStatus.EXECUTING, RunStatus.COMPLETED


def test_the_journal_sums_what_is_left_after_undo() -> None:
    journal = CountJournal()
    assert not journal
    journal.added((Q, None, "task/a"))
    journal.moved((Q, None, "task/a"), (E, None, "task/a"))
    journal.moved((E, None, "task/a"), (E, None, "task/a"))  # no move: nothing noted
    mark = journal.mark()
    journal.moved((E, None, "task/a"), (C, "proj", "task/a"))  # a part that failed
    journal.undo(mark)
    assert journal.statuses() == {Q: 0, E: 1}
    assert journal.queues() == {("", "task/a", Q): 0, ("", "task/a", E): 1}
    # a sum of 0 is no row: one upsert per key
    assert journal.sums() == ([(E, 1)], [("", "task/a", E, 1)])
    journal.clear()
    assert not journal and journal.sums() == ([], [])


def test_the_sums_are_the_per_status_and_per_queue_totals_sorted() -> None:
    """`sums` (one pass) gives what summing `statuses()` and `queues()` gives: every nonzero
    total, sorted, the queue rows for the queued and running statuses only."""
    rng = random.Random(17)
    statuses = list(RunStatus)
    for _ in range(200):
        journal = CountJournal()
        for _ in range(rng.randint(0, 12)):
            old = (rng.choice(statuses), rng.choice([None, "p1", "p2"]), rng.choice(["q1", "q2"]))
            new = (rng.choice(statuses), rng.choice([None, "p1"]), rng.choice(["q1", "q3"]))
            journal.added(old) if rng.random() < 0.3 else journal.moved(old, new)
        want = ([(s, n) for s, n in sorted(journal.statuses().items()) if n],
                [(p, q, s, n) for (p, q, s), n in sorted(journal.queues().items()) if n])
        assert journal.sums() == want


async def test_both_stores_keep_their_deltas_in_the_one_journal(tmp_path: Path) -> None:
    assert isinstance(Pending().counts, CountJournal)  # PostgreSQL's, sent with the COMMIT
    store = SqliteStore(str(tmp_path / "counts.db"))
    await store.open()
    try:
        async with store.tx() as ops:
            assert isinstance(getattr(ops, "counts", None), CountJournal)
    finally:
        await store.close()
