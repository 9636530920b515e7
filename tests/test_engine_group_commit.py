"""Group commit (`GroupCommit` in engine/unit.py): completions that arrive together share one
transaction; a part that fails undoes only its own writes and events and fails only its own
caller; every caller is answered after the commit."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.engine_support import open_engine
from trigger_local.clock import FakeClock
from trigger_local.engine import AttemptOutcome, Engine, TriggerRequest
from trigger_local.engine.events import Event, RunStatusChanged
from trigger_local.engine.unit import Tx
from trigger_local.errors import ConflictError
from trigger_local.store.models import COMPLETED, EXECUTING, Run, TaskDef


@pytest.fixture
async def engine(tmp_path: Path, clock: FakeClock) -> AsyncIterator[Engine]:
    eng = await open_engine(tmp_path, clock, tasks=[TaskDef(task_id="hello", queue="task/hello")])
    yield eng
    await eng.store.close()


async def executing(engine: Engine, n: int) -> list[Run]:
    for _ in range(n):
        await engine.trigger(TriggerRequest(task_id="hello"))
    out = []
    for i, run in enumerate(await engine.dequeue(n)):
        started = await engine.start_attempt(run, f"worker_{i}", 100 + i)
        assert started is not None
        out.append(started[0])
    return out


def done(output: str = '"ok"') -> AttemptOutcome:
    return AttemptOutcome(ok=True, output=output, output_type="application/json")


async def test_completions_that_arrive_together_share_one_transaction(engine: Engine) -> None:
    runs = await executing(engine, 5)
    seen: list[Event] = []
    engine.hub.subscribe(RunStatusChanged, seen.append)
    before = engine.group.batches
    finished = await asyncio.gather(*(engine.finish_attempt(r.id, 1, done()) for r in runs))
    assert [r.status for r in finished] == [COMPLETED] * 5
    assert engine.group.batches == before + 1
    assert sorted(e.run_id for e in seen if e.status == COMPLETED) == sorted(r.id for r in runs)
    for run in runs:
        stored = await engine.queries.runs.get(run.id)
        assert stored is not None and stored.status == COMPLETED


async def test_a_late_completion_fails_alone(engine: Engine) -> None:
    runs = await executing(engine, 3)
    seen: list[Event] = []
    engine.hub.subscribe(RunStatusChanged, seen.append)
    results = await asyncio.gather(
        engine.finish_attempt(runs[0].id, 1, done()),
        engine.finish_attempt(runs[1].id, 2, done()),  # not its current attempt
        engine.finish_attempt(runs[2].id, 1, done()), return_exceptions=True)
    assert isinstance(results[1], ConflictError)
    assert [r.status for r in results if isinstance(r, Run)] == [COMPLETED, COMPLETED]
    late = await engine.queries.runs.get(runs[1].id)
    assert late is not None and late.status == EXECUTING
    assert runs[1].id not in {e.run_id for e in seen}


async def test_a_failing_part_undoes_its_own_writes_only(engine: Engine) -> None:
    async def write(tx: Tx, key: str, fail: bool) -> str:
        await tx.kv.set(key, "written")
        if fail:
            raise ConflictError("this part changes its mind")
        return key

    results = await asyncio.gather(engine.group.run(write, "kept", False),
                                   engine.group.run(write, "undone", True),
                                   engine.group.run(write, "also-kept", False),
                                   return_exceptions=True)
    assert results[0] == "kept" and results[2] == "also-kept"
    assert isinstance(results[1], ConflictError)
    kv = engine.queries.kv
    assert (await kv.get("kept"), await kv.get("undone"), await kv.get("also-kept")) \
        == ("written", None, "written")


async def test_callers_are_answered_only_after_the_commit(engine: Engine) -> None:
    runs = await executing(engine, 2)
    answered: list[str] = []

    async def finish(run: Run) -> None:
        await engine.finish_attempt(run.id, 1, done())
        # what the caller was told is in the database for any other reader
        stored = await engine.queries.runs.get(run.id)
        assert stored is not None and stored.status == COMPLETED
        answered.append(run.id)

    await asyncio.gather(*(finish(r) for r in runs))
    assert sorted(answered) == sorted(r.id for r in runs)


async def test_a_transaction_sqlite_rolled_back_fails_the_whole_batch(engine: Engine) -> None:
    """SQLite rolls the whole transaction back on some errors (SQLITE_FULL: a full disk), not
    only the failing part's savepoint: no part of the batch stands, every caller gets that
    error (a 507 at the API), and the parts after it do not commit on their own outside any
    transaction."""
    writer = engine.store._writer  # type: ignore[attr-defined]

    async def write(tx: Tx, key: str, fail: bool) -> str:
        await tx.kv.set(key, "written")
        if fail:  # what SQLite does on SQLITE_FULL in the middle of a transaction
            writer.execute("ROLLBACK").close()
            raise sqlite3.OperationalError("database or disk is full")
        return key

    results = await asyncio.gather(engine.group.run(write, "before", False),
                                   engine.group.run(write, "failing", True),
                                   engine.group.run(write, "after", False),
                                   return_exceptions=True)
    assert all(isinstance(r, sqlite3.OperationalError) and "disk is full" in str(r)
               for r in results), results
    kv = engine.queries.kv
    assert [await kv.get(k) for k in ("before", "failing", "after")] == [None, None, None]
    # and the next batch commits as usual
    assert await engine.group.run(write, "next", False) == "next"
    assert await kv.get("next") == "written"


async def test_finishes_submitted_together_share_a_commit_and_resume_their_caller_at_once(
        engine: Engine) -> None:
    """`finish_attempt` queues its part at once (`GroupCommit.submit`): a caller that queues
    several and awaits them in turn gets them in one commit, and goes on in the loop turn after
    it — the turn the hand-over's starts are answered in, their parts answered first, so the
    pool's assignments and the completions' answer leave together (api/channel.py)."""
    runs = await executing(engine, 3)
    batches = engine.group.batches
    order: list[str] = []

    async def start_joined(tx: Tx, join: Any) -> None:
        joined = await join(_noop_part)
        joined.add_done_callback(lambda _: order.append("joined"))

    engine.group.then = start_joined
    pending = [engine.finish_attempt(r.id, 1, done()) for r in runs]
    assert all(isinstance(p, asyncio.Future) for p in pending)
    for future in pending:
        future.add_done_callback(lambda _: order.append("finish"))
    finished = [await p for p in pending]
    assert [r.status for r in finished] == [COMPLETED] * 3
    assert engine.group.batches == batches + 1
    await asyncio.sleep(0)  # one loop turn: the done callbacks of the same commit have run
    assert order == ["joined", "finish", "finish", "finish"]


async def _noop_part(tx: Tx) -> None:
    return None


async def test_a_batchs_event_rows_are_one_statement_in_order_without_a_failed_parts(
        engine: Engine) -> None:
    """The rows of a group commit's events are written together just before the commit
    (`Tx.write_events`): one `executemany`, in the order the parts recorded them, and none of a
    part that failed (here: a completion of an attempt that is not current)."""
    runs = await executing(engine, 4)
    conn = engine.store._writer  # type: ignore[attr-defined]
    assert isinstance(conn, sqlite3.Connection)
    inserts: list[str] = []
    conn.set_trace_callback(lambda s: inserts.append(s) if "INSERT INTO events" in s else None)
    last = await engine.queries.events.last_seq()
    many = engine.store._write_view.events  # type: ignore[attr-defined]
    calls: list[int] = []
    real = many.append_many

    async def counted(rows: Any) -> None:  # the real statement, its calls counted
        calls.append(len(rows))
        await real(rows)

    many.append_many = counted
    try:
        results = await asyncio.gather(
            engine.finish_attempt(runs[0].id, 1, done()),
            engine.finish_attempt(runs[1].id, 2, done()),  # not its current attempt: fails
            engine.finish_attempt(runs[2].id, 1, done()),
            engine.finish_attempt(runs[3].id, 1, done()), return_exceptions=True)
    finally:
        conn.set_trace_callback(None)
        del many.append_many
    assert isinstance(results[1], ConflictError)
    assert calls == [3] and len(inserts) == 3
    rows = await engine.queries.events.after(last)
    assert [(e.run_id, e.type) for e in rows] == [
        (runs[0].id, "run.completed"), (runs[2].id, "run.completed"),
        (runs[3].id, "run.completed")]
