"""`store/sqlite/rows.py` `from_row`: a run read back as a `sqlite3.Row` or a dict is the run
written — JSON, booleans and the values NULL stands for decoded — and each read gets lists and
dicts of its own (issue #13: it reads the columns by position, under names interned once)."""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

from trigger_local.store.models import Attempt, Run
from trigger_local.store.sqlite.rows import _SHAPES, columns, from_row, insert_sql, to_row


def _run(**changes: object) -> Run:
    base = Run(id="run_1", task_id="t", status="QUEUED", snapshot_id="s", snapshot_kind="k",
               queue="task/t", created_at=1.0, updated_at=1.0, queued_at=1.0)
    for key, value in changes.items():
        setattr(base, key, value)
    return base


def _table(tmp_path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(tmp_path / "rows.db")
    conn.row_factory = sqlite3.Row
    conn.execute(f"CREATE TABLE runs ({', '.join(columns(Run))})")
    return conn


def test_a_run_reads_back_as_written_from_a_row_or_a_dict(tmp_path: Path) -> None:
    conn = _table(tmp_path)
    plain = _run()
    full = _run(id="run_2", error={"message": "boom"}, tags=["a", "b"], metadata={"k": 1},
                resume_parent=True, is_test=True, payload_type="application/store")
    for run in (plain, full):
        conn.execute(insert_sql("runs", Run), to_row(run, compact=True))
    rows = conn.execute("SELECT * FROM runs ORDER BY id").fetchall()
    assert [from_row(Run, r) for r in rows] == [plain, full]
    assert [from_row(Run, dict(r)) for r in rows] == [plain, full]
    stored = conn.execute("SELECT tags, metadata, payload_type FROM runs WHERE id = 'run_1'")
    assert tuple(stored.fetchone()) == (None, None, None)  # common values stay NULL


def test_each_read_gets_lists_and_dicts_of_its_own_under_interned_names(
        tmp_path: Path) -> None:
    conn = _table(tmp_path)
    conn.execute(insert_sql("runs", Run), to_row(_run(), compact=True))
    row = conn.execute("SELECT * FROM runs").fetchone()
    first, second = from_row(Run, row), from_row(Run, row)
    first.tags.append("x")
    first.metadata["y"] = 1
    assert second.tags == [] and second.metadata == {}
    names, _ = _SHAPES[(Run, tuple(row.keys()))]
    assert all(name is sys.intern(name) for name in names)


def test_other_models_and_partial_rows_decode_too(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "a.db")
    conn.row_factory = sqlite3.Row
    attempt = Attempt(id="a", run_id="r", number=1, status="FAILED", started_at=1.0,
                      error={"name": "E"}, counts=False)
    conn.execute(f"CREATE TABLE attempts ({', '.join(columns(Attempt))})")
    conn.execute(insert_sql("attempts", Attempt), to_row(attempt, compact=True))
    assert from_row(Attempt, conn.execute("SELECT * FROM attempts").fetchone()) == attempt
    part = conn.execute("SELECT id, run_id, number, status, started_at FROM attempts").fetchone()
    assert from_row(Attempt, part).executor == "process"  # a default, not decoded
