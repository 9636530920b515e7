"""A new run's INSERT binds only the columns it sets, by position (issue #13,
store/sqlite/run_inserts.py): the columns it leaves out get what the schema gives them, and
every run reads back as it was written, one by one or many at once."""

from __future__ import annotations

import re
import sqlite3
from contextlib import closing

from store_support import (
    T0,
    make_run,
    sqlite_store,  # noqa: F401 (the store fixture)
)

from trigger_local.store import SqliteStore
from trigger_local.store.models import COMPLETED, DELAYED, QUEUED, Run
from trigger_local.store.sqlite.rows import columns, to_row
from trigger_local.store.sqlite.run_inserts import RUN_DEFAULTS, run_row


def _full_run(run_id: str) -> Run:
    """A run with every column set to something other than its default."""
    return make_run(
        run_id, status=COMPLETED, payload='{"a": 1}', payload_type="application/super+json",
        output="1", output_type="application/json", error={"message": "no"},
        version_id="version_1", concurrency_key="k", delay_until=T0 + 1, expires_at=T0 + 2,
        started_at=T0 + 3, completed_at=T0 + 4, idempotency_key=f"key-{run_id}",
        idempotency_key_user="user-key", idempotency_expires_at=T0 + 5, tags=["a", "b"],
        max_attempts=3, max_duration_s=9.5, priority=2.5, machine="large-1x",
        metadata={"m": [1, 2]}, attempt_count=2, parent_run_id="run_parent",
        root_run_id="run_root", batch_id="batch_1", resume_parent=True, worker_id="worker_1",
        deadline_at=T0 + 6, executed_s=1.25, waitpoint_id="waitpoint_1", is_test=True, depth=3,
        schedule_id="sched_1", project="proj_x", interrupted_count=1)


def test_the_defaults_left_out_are_the_schemas(store: SqliteStore) -> None:
    """A column the INSERT leaves out must get the value the run holds: NULL, or the schema's
    DEFAULT, which RUN_DEFAULTS names. A migration that changes a default fails here."""
    with closing(sqlite3.connect(store.path)) as conn:
        defaults = {str(name): default for _, name, _, _, default, _
                    in conn.execute("PRAGMA table_info(runs)") if default is not None}
    assert {name: float(value) for name, value in defaults.items()} == \
        {name: float(value) for name, value in RUN_DEFAULTS.items()}


async def test_every_run_reads_back_as_written(store: SqliteStore) -> None:
    """Runs of several shapes — all defaults, every column set, a mix — inserted alone and many
    at once (runs of one shape after another: one executemany each) read back unchanged."""
    plain = [make_run(f"run_p{i}") for i in range(3)]
    full = [_full_run(f"run_f{i}") for i in range(2)]
    mixed = [make_run("run_m0", status=DELAYED, delay_until=T0 + 9, priority=1.0,
                      project=None, depth=0, tags=["t"]),
             make_run("run_m1", resume_parent=False, is_test=True, executed_s=0.0)]
    alone = [make_run("run_a0"), _full_run("run_a1")]
    async with store.tx() as ops:
        await ops.runs.insert_many([plain[0], full[0], *plain[1:], *mixed, full[1]])
        for run in alone:
            await ops.runs.insert(run)
    read = store.read()
    for run in [*plain, *full, *mixed, *alone]:
        assert await read.runs.get(run.id) == run
    counts = await read.runs.count_by_status()
    assert counts == {QUEUED: 5, COMPLETED: 3, DELAYED: 1}
    assert [r.id for r in await read.runs.page(limit=20, tags=["t"])] == ["run_m0"]


async def test_a_new_run_binds_only_the_columns_it_sets(store: SqliteStore) -> None:
    """A queued run as a trigger makes it names 11 of the 43 columns."""
    sent: list[str] = []
    writer = store._writer  # noqa: SLF001 - the statement the store really sends
    assert writer is not None
    writer.set_trace_callback(sent.append)
    try:
        async with store.tx() as ops:
            await ops.runs.insert_many([make_run(f"run_{i}", project="proj_x",
                                                 payload="null") for i in range(3)])
            await ops.runs.insert(make_run("run_3", project="proj_x", payload="null"))
    finally:
        writer.set_trace_callback(None)
    # a statement that may fire a trigger is traced again per trigger, with the same text
    inserts = [s for i, s in enumerate(sent)
               if s.startswith("INSERT INTO runs") and (i == 0 or sent[i - 1] != s)]
    assert len(inserts) == 4
    for text in inserts:
        named = re.match(r"INSERT INTO runs \(([^)]*)\)", text)
        assert named is not None
        assert named.group(1).split(", ") == [
            "id", "task_id", "status", "snapshot_id", "snapshot_kind", "queue", "created_at",
            "updated_at", "queued_at", "payload", "project"]


def test_a_row_is_the_compact_row_less_its_defaults() -> None:
    """`run_row` (its columns in one call) gives what `to_row(run, compact=True)` gives, less
    the NULLs and the schema's defaults, for runs of every shape."""
    runs = [make_run("run_p"), _full_run("run_f"),
            make_run("run_m", tags=["t"], metadata={"a": 1}, payload_type="text/plain",
                     resume_parent=True, priority=0.0, depth=0, error=None, project=None)]
    for run in runs:
        shape, values = run_row(run)
        names = columns(Run)
        expected = {name: value for name, value in to_row(run, compact=True).items()
                    if value is not None and RUN_DEFAULTS.get(name, object()) != value}
        assert dict(zip([names[i] for i in shape], values, strict=True)) == expected
