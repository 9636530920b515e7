"""The hot path's writes (issue #13): what a no-op run's dequeue, start and finish cost in
statements on a real SQLite file; the dispatcher's reserved runs (engine/dequeue.py), which stay
QUEUED in the store until their start; and that the start reads the run again only when it
changed since it was dequeued."""

from __future__ import annotations

import asyncio
import sqlite3
from collections import Counter
from pathlib import Path

import pytest

from tests.engine_support import T0, noop_engine, open_engine  # noqa: F401 (the engine fixture)
from trigger_local.clock import FakeClock
from trigger_local.engine import AttemptOutcome, Engine, TriggerRequest
from trigger_local.store import SqliteStore
from trigger_local.store.models import (
    CANCELED,
    COMPLETED,
    DEQUEUED,
    EXECUTING,
    QUEUED,
    SYSTEM_FAILURE,
    LogEntry,
    Run,
    TaskDef,
)

N = 20


def _writer(engine: Engine) -> sqlite3.Connection:
    store = engine.store
    assert isinstance(store, SqliteStore)
    conn = store._writer  # every unit of work's statements run on it
    assert isinstance(conn, sqlite3.Connection)
    return conn


def _kind(statement: str) -> str:
    """`UPDATE runs`, `INSERT events`, `SELECT attempts`: what a traced statement does."""
    words = statement.split()
    if statement.startswith("SELECT status, project, queue FROM runs"):
        return "SELECT runs' counters"  # what a status change moves (store/sqlite/counts.py)
    if words[0] == "SELECT":
        return "SELECT " + words[words.index("FROM") + 1]
    if words[0] == "INSERT":
        return "INSERT " + words[2]
    return " ".join(words[:2])


class Trace:
    """The writer's statements by kind. A statement that fires the schema's triggers is traced
    once more per trigger, with the same text: a repeat of the last text is not counted."""

    def __init__(self, engine: Engine) -> None:
        self.seen: Counter[str] = Counter()
        self._conn, self._last = _writer(engine), ""
        self._conn.set_trace_callback(self._note)

    def _note(self, statement: str) -> None:
        if statement != self._last:
            self.seen[_kind(statement)] += 1
        self._last = statement

    def per_run(self) -> dict[str, float]:
        self._conn.set_trace_callback(None)
        return {kind: n / N for kind, n in self.seen.items()}

    def total(self) -> int:
        self._conn.set_trace_callback(None)
        return sum(self.seen.values())


async def test_a_no_op_run_writes_one_row_per_transition_it_keeps(engine: Engine) -> None:
    """Dequeued then started at once: DEQUEUED leaves no snapshot or event row, the start does
    not read the run again, the finish does not read its attempts. A transition's history is
    its event row alone: it names the snapshot (engine/runs.py)."""
    await engine.trigger_many([TriggerRequest(task_id="noop") for _ in range(N)])
    trace = Trace(engine)
    runs = await engine.dequeue(N)
    dequeue = trace.per_run()
    assert len(runs) == N
    assert dequeue["UPDATE runs"] == 1
    assert "INSERT snapshots" not in dequeue and "INSERT events" not in dequeue
    trace = Trace(engine)
    for run in runs:
        assert await engine.start_attempt(run, "worker_1", 1) is not None
    start = trace.per_run()
    assert start["UPDATE runs"] == 1 and start["INSERT attempts"] == 1
    assert "INSERT snapshots" not in start and start["INSERT events"] == 1  # one row each
    assert "SELECT runs" not in start and "SELECT attempts" not in start
    trace = Trace(engine)
    for run in runs:
        await engine.finish_attempt(run.id, 1, AttemptOutcome(ok=True, output="null"))
    finish = trace.per_run()
    assert finish["UPDATE runs"] == 1 and finish["UPDATE attempts"] == 1
    assert "INSERT snapshots" not in finish and finish["INSERT events"] == 1
    # nor the run: its start's copy is moved, the compare-and-set proves it (finish_current)
    assert "SELECT runs" not in finish and "SELECT attempts" not in finish
    assert "DELETE FROM" not in finish  # it never waited: no run_waitpoints edge blocks it
    assert "SELECT runs' counters" not in start and "SELECT runs' counters" not in finish
    # it logged nothing: no log line, and no count of its lines against the cap, read or written
    assert not [kind for kind in [*start, *finish] if "log" in kind], (start, finish)
    history = await engine.queries.events.after(0, run_id=runs[0].id)
    assert [(e.type, e.data["from"]) for e in history] == [
        ("run.created", None), ("run.executing", "DEQUEUED"), ("run.completed", "EXECUTING")]


async def test_a_single_triggered_run_is_34_statements(engine: Engine) -> None:
    """docs/architecture.md's figures, on the writer with BEGIN and COMMIT: the trigger 6, the
    dispatcher's dequeue round 7 (its reads serve all the runs it takes), the start 11, the
    finish 10 — once the catalog memo holds what the dequeue reads (store/sqlite/memo.py)."""
    units = []
    for _ in range(2):  # the first run fills the memo
        trace = Trace(engine)
        await engine.trigger(TriggerRequest(task_id="noop"))
        trigger = trace.total()
        trace = Trace(engine)
        [run] = await engine.dequeue(5, reserve=True)
        dequeue = trace.total()
        trace = Trace(engine)
        assert await engine.start_attempt(run, "worker_1", 1) is not None
        start = trace.total()
        trace = Trace(engine)
        await engine.finish_attempt(run.id, 1, AttemptOutcome(ok=True, output="null"))
        units.append((trigger, dequeue, start, trace.total()))
    assert units[1] == (6, 7, 11, 10) and sum(units[1]) == 34
    assert sum(units[0]) == 38  # the memo's four reads: the queue's row, paused, limits, rates


async def test_a_run_that_changed_since_its_dequeue_is_read_again(engine: Engine) -> None:
    """The dequeued copy is stale (its snapshot moved on): canceled, the start gives None;
    taken back and dequeued again, the start reads it and starts it."""
    await engine.trigger_many([TriggerRequest(task_id="noop") for _ in range(2)])
    first, second = await engine.dequeue(2)
    await engine.cancel(first.id)
    assert await engine.start_attempt(first, "worker_1", 1) is None
    stale = await engine.queries.runs.get(second.id)
    assert stale is not None
    await engine.requeue(second, "no process available")
    [again] = await engine.dequeue(1)
    assert again.snapshot_id != stale.snapshot_id
    started = await engine.start_attempt(stale, "worker_1", 1)
    assert started is not None
    run, attempt = started
    assert run.status == EXECUTING and attempt.number == 1
    assert stale.status != EXECUTING  # the caller's object is left as it was
    canceled = await engine.queries.runs.get(first.id)
    assert canceled is not None and canceled.status == CANCELED


async def test_a_reserved_run_is_written_once_by_its_start(engine: Engine) -> None:
    """The dispatcher's dequeue (`reserve=True`) writes no run: the start moves each reserved run
    QUEUED → EXECUTING in one update, with the version its dequeue chose."""
    await engine.trigger_many([TriggerRequest(task_id="noop") for _ in range(N)])
    trace = Trace(engine)
    runs = await engine.dequeue(N, reserve=True)
    taken = trace.per_run()
    assert len(runs) == N and {r.status for r in runs} == {QUEUED}
    assert "UPDATE runs" not in taken and "INSERT snapshots" not in taken
    stored = await engine.queries.runs.get(runs[0].id)
    assert stored is not None and stored.status == QUEUED
    trace = Trace(engine)
    for run in runs:
        assert await engine.start_attempt(run, "worker_1", 1) is not None
    start = trace.per_run()
    assert start["UPDATE runs"] == 1 and start["INSERT events"] == 1
    assert "INSERT snapshots" not in start
    assert "SELECT runs" not in start
    assert engine.ctx.reserved == {}
    stored = await engine.queries.runs.get(runs[0].id)
    assert stored is not None and stored.status == EXECUTING
    assert stored.version_id == "version_1" and stored.attempt_count == 1
    history = await engine.queries.events.after(0, run_id=runs[0].id)
    assert [(e.type, e.data["from"]) for e in history] == [
        ("run.created", None), ("run.executing", "QUEUED")]


async def test_reserved_runs_count_as_running_until_started_or_let_go(tmp_path: Path) -> None:
    """Reserved runs take their slots of the concurrency (a second dequeue gets none of them and
    no more than what is left); `requeue` lets one go without a write, and it is taken again."""
    engine = await open_engine(tmp_path, FakeClock(T0), concurrency=3,
                               tasks=[TaskDef(task_id="noop", queue="task/noop")])
    try:
        await engine.trigger_many([TriggerRequest(task_id="noop") for _ in range(5)])
        first = await engine.dequeue(2, reserve=True)
        second = await engine.dequeue(5, reserve=True)
        assert len(first) == 2 and len(second) == 1
        assert not {r.id for r in first} & {r.id for r in second}
        assert await engine.dequeue(5, reserve=True) == []
        trace = Trace(engine)
        await engine.requeue(second[0], "no process available")
        assert "UPDATE runs" not in trace.per_run()
        [again] = await engine.dequeue(5, reserve=True)
        assert again.id == second[0].id
    finally:
        await engine.store.close()


async def test_a_reserved_run_canceled_or_without_version_before_its_start(
        engine: Engine) -> None:
    """Canceled between its dequeue and its start, the start gives None; a run whose version
    the executor cannot find fails (SYSTEM_FAILURE) straight from QUEUED."""
    await engine.trigger_many([TriggerRequest(task_id="noop") for _ in range(2)])
    first, second = await engine.dequeue(2, reserve=True)
    await engine.cancel(first.id)
    assert await engine.start_attempt(first, "worker_1", 1) is None
    await engine.system_failure(second, "Version version_1 is gone")
    failed = await engine.queries.runs.get(second.id)
    assert failed is not None and failed.status == SYSTEM_FAILURE
    assert engine.ctx.reserved == {}


async def test_a_store_other_daemons_share_gets_dequeued_runs_not_reservations(
        engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """Their dispatchers cannot see this one's memory: the run is written DEQUEUED."""
    monkeypatch.setattr(engine.store, "shared", True)
    await engine.trigger(TriggerRequest(task_id="noop"))
    [run] = await engine.dequeue(1, reserve=True)
    assert run.status == DEQUEUED and engine.ctx.reserved == {}


async def test_a_group_commit_writes_the_counters_once(engine: Engine) -> None:
    """A status change runs no trigger (store/sqlite/counts.py): the starts and finishes of N
    runs that share a group commit each update their run once, and the counters are written
    once per transaction — and stay exact."""
    await engine.trigger_many([TriggerRequest(task_id="noop") for _ in range(N)])
    runs = await engine.dequeue(N, reserve=True)
    texts: list[str] = []
    conn = _writer(engine)
    conn.set_trace_callback(texts.append)  # a trigger's statements repeat the text that fired it
    try:
        started = await asyncio.gather(*(engine.start_attempt(r, "worker_1", 1) for r in runs))
        assert all(s is not None for s in started)
        await asyncio.gather(*(engine.finish_attempt(r.id, 1, AttemptOutcome(ok=True,
                                                                            output="null"))
                               for r in runs))
    finally:
        conn.set_trace_callback(None)
    commits = sum(t == "COMMIT" for t in texts)
    assert commits <= 4  # the N starts share a commit, as do the N finishes
    # a move's compare-and-set knows what the run counted as: the counters read nothing first
    assert not [t for t in texts if t.startswith("SELECT status, project, queue FROM runs")]
    assert sum(t.startswith("UPDATE runs") for t in texts) == 2 * N  # no trigger repeats
    # one upsert per status (or queue and status) a transaction moved runs out of or into
    assert sum("run_counts" in t for t in texts) <= 2 * commits
    assert sum("queue_counts" in t for t in texts) <= 2 * commits
    assert await engine.queries.runs.count_by_status() == {COMPLETED: N}
    [queue] = [q for q in await engine.queries.queues.all() if q.name == "task/noop"]
    assert (queue.queued, queue.running) == (0, 0)


async def test_a_start_copies_its_run_without_copy_module(
        engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """The start moves a copy of the dequeued run (a refused unit runs again from the run as it
    was): `Run.copied`, ~2.3 µs, where `copy.copy` took ~9.5 (its `__reduce_ex__` round)."""


    def refuse(_: object) -> None:
        raise AssertionError("copy.copy on the hot path")

    monkeypatch.setattr(Run, "__copy__", refuse, raising=False)  # what copy.copy calls first
    await engine.trigger_many([TriggerRequest(task_id="noop", tags=["t"]) for _ in range(2)])
    runs = await engine.dequeue(2, reserve=True)
    for run in runs:
        started = await engine.start_attempt(run, "worker_1", 1)
        assert started is not None and started[0] is not run and started[0].status == EXECUTING
        assert run.status == QUEUED  # the caller's run is left as it was
    twin = runs[0].copied()
    assert twin == runs[0] and twin is not runs[0] and twin.tags is runs[0].tags  # shallow


async def test_a_run_completed_while_it_waits_loses_its_edges(engine: Engine) -> None:
    """A finish skips the edge delete only for a run it moves from EXECUTING: one whose process
    completed it while it was recorded WAITING is unblocked as before, so the token it waited
    on, completed later, finds no run to resume."""
    [result] = await engine.trigger_many([TriggerRequest(task_id="noop")])
    [run] = await engine.dequeue(1, reserve=True)
    assert await engine.start_attempt(run, "worker_1", 1) is not None
    token, _ = await engine.create_token()
    await engine.wait(run.id, 1, kind="token", waitpoint_id=token.id)
    assert [wp.id for wp in await engine.queries.waitpoints.blocking(run.id)] == [token.id]
    await engine.finish_attempt(run.id, 1, AttemptOutcome(ok=True, output="null"))
    assert await engine.queries.waitpoints.blocking(run.id) == []
    await engine.complete_token(token.id, '"late"')
    done = await engine.queries.runs.get(result.run.id)
    assert done is not None and done.status == COMPLETED


async def test_a_burst_of_log_lines_writes_its_count_once_and_reads_nothing(
        engine: Engine) -> None:
    """A burst's lines and its attempt's count against the cap (engine/log_cap.py): one
    statement each, in its transaction; the count of an attempt this daemon started is in
    memory, so the burst reads no count and no stored line."""
    await engine.trigger_many([TriggerRequest(task_id="noop") for _ in range(N)])
    runs = await engine.dequeue(N)
    for run in runs:
        assert await engine.start_attempt(run, "worker_1", 1) is not None
    trace = Trace(engine)
    for run in runs:  # each burst says its first line (sdk/context.py): read from memory
        await engine.append_logs([LogEntry(run_id=run.id, attempt=1, at=T0, level="info",
                                           message=f"line {i}") for i in range(3)], first=0)
    burst = trace.per_run()
    assert burst["INSERT log_usage"] == 1 and burst["INSERT logs"] == 3, burst  # a row a line
    # no count read, and of the lines only the last id (engine/runs.py store_logs), no page
    assert "SELECT log_usage" not in burst and burst["SELECT logs"] == 1, burst
    trace = Trace(engine)
    for run in runs:  # sent again (its answer was lost): what the store holds is read, once
        await engine.append_logs([LogEntry(run_id=run.id, attempt=1, at=T0, level="info",
                                           message=f"line {i}") for i in range(3)], first=0,
                                 recount=True)
    again = trace.per_run()
    assert again["SELECT log_usage"] == 1 and "INSERT logs" not in again, again
    usage = await engine.queries.logs.usage(runs[0].id, 1)
    assert usage is not None and (usage.stored_lines, usage.dropped_lines) == (3, 0)


async def test_a_run_with_no_live_attempt_reads_no_log_count(tmp_path: Path) -> None:
    """A delayed run queued when its time comes, a queued run canceled, and a retry queued
    after its backoff have no live attempt (none yet, or the move before ended it): none reads
    the count of an attempt's lines against the cap (engine/log_cap.py), a statement per run
    (on PostgreSQL a round trip) for nothing."""
    clock = FakeClock(T0)
    retry = {"max_attempts": 2, "min_timeout_s": 1, "max_timeout_s": 1, "randomize": False}
    engine = await open_engine(tmp_path, clock, concurrency=1000, tasks=[
        TaskDef(task_id="noop", queue="task/noop"),
        TaskDef(task_id="retrying", queue="task/retrying", retry=retry)])
    try:
        await engine.trigger_many([TriggerRequest(task_id="noop", delay="10s")
                                   for _ in range(N)])
        clock.advance(11)
        trace = Trace(engine)
        assert await engine.tick_timers() == N
        due = trace.per_run()
        queued = await engine.dequeue(N, reserve=True)
        assert len(queued) == N
        trace = Trace(engine)
        for run in queued:
            await engine.cancel(run.id)
        canceled = trace.per_run()
        await engine.trigger_many([TriggerRequest(task_id="retrying") for _ in range(N)])
        for run in await engine.dequeue(N):
            assert await engine.start_attempt(run, "worker_1", 1) is not None
            await engine.finish_attempt(run.id, 1, AttemptOutcome(ok=False,
                                                                  error={"message": "x"}))
        clock.advance(2)
        trace = Trace(engine)
        assert await engine.tick_timers() == N  # the retries: DELAYED → QUEUED
        retried = trace.per_run()
    finally:
        await engine.store.close()
    reads = [kind for kind in [*due, *canceled, *retried] if "log" in kind]
    assert not reads, (due, canceled, retried)
