"""An attempt's log cap across a restart of the daemon (engine/log_cap.py): what was stored and
dropped is counted in the store, in the commit of the lines it counts, so a daemon started
since — which adopts the attempt's still running process — goes on from the same count: a
burst sent again is not stored or counted twice, a line that would still fit is dropped (what
is stored stays the first part of what the task logged), and the one marker counts the lines
dropped before the restart too. On both stores; a new `Engine` on the same store is the
restarted daemon (its memory is new). And the marker's attribute is the daemon's alone."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

from engine_support import HELLO, T0, open_engine, start, trigger

from trigger_local.clock import FakeClock
from trigger_local.config import DaemonSettings
from trigger_local.engine import AttemptOutcome, Engine
from trigger_local.engine.log_cap import DROPPED_ATTRIBUTE
from trigger_local.store import SqliteStore, Store
from trigger_local.store.models import LogEntry, LogUsage

CAP = 1024
BIG, TINY = "b" * 400, "t" * 10


def _line(run_id: str, text: str, level: str = "info", **attributes: object) -> LogEntry:
    return LogEntry(run_id=run_id, attempt=1, at=T0, level=level, message=text,
                    attributes=dict(attributes))


async def _restarted(store: Store, tmp_path: Path) -> Engine:
    engine = Engine(store, FakeClock(T0), DaemonSettings(home=tmp_path, log_limit_bytes=CAP))
    await engine.load()
    return engine


async def _capped_run(store: Store, tmp_path: Path) -> str:
    """A run whose attempt 1 stored 2 lines (800 bytes) and dropped 3 (420 bytes): line 2
    went past the cap, lines 3 and 4 would fit but come after a dropped one."""
    engine = await open_engine(tmp_path, FakeClock(T0), tasks=[HELLO], store=store,
                               log_limit_bytes=CAP)
    run = await trigger(engine)
    await start(engine, run.id)
    await engine.append_logs([_line(run.id, f"{i} {BIG}"[:400]) for i in range(3)], first=0)
    await engine.append_logs([_line(run.id, TINY), _line(run.id, TINY)], first=3)
    return run.id


async def test_a_restarted_daemon_goes_on_from_the_count_of_the_one_before(
        store: Store, tmp_path: Path) -> None:
    run_id = await _capped_run(store, tmp_path)
    again = await _restarted(store, tmp_path)
    # the last burst again (its answer was lost with the old daemon), then line 5
    await again.append_logs([_line(run_id, TINY), _line(run_id, TINY)], first=3)
    await again.append_logs([_line(run_id, TINY)], first=5)
    await again.finish_attempt(run_id, 1, AttemptOutcome(ok=True))
    entries = await store.read().logs.for_run(run_id)
    assert [e.message[:2] for e in entries[:-1]] == ["0 ", "1 "], entries  # nothing else stored
    marker = entries[-1]
    assert marker.message.startswith("4 log lines (430 bytes) of this attempt were dropped"), \
        marker.message
    said = marker.attributes[DROPPED_ATTRIBUTE]
    assert 2 + said["lines"] == 6  # what the task sent: stored + dropped
    assert await store.read().logs.usage(run_id, 1) == LogUsage(2, 800, 4, 430, marked=True)


async def test_an_attempt_that_ends_after_the_restart_without_a_line_gets_its_marker(
        store: Store, tmp_path: Path) -> None:
    run_id = await _capped_run(store, tmp_path)
    again = await _restarted(store, tmp_path)
    await again.finish_attempt(run_id, 1, AttemptOutcome(ok=True))
    messages = [e.message for e in await store.read().logs.for_run(run_id)]
    assert len(messages) == 3, messages
    assert messages[-1].startswith("3 log lines (420 bytes) of this attempt were dropped")


async def test_a_task_cannot_fake_the_marker_attribute(store: Store, tmp_path: Path) -> None:
    """A task's `warn` line carrying the marker's attribute would have told a restarted
    daemon the attempt ended capped (it dropped every later line)."""
    engine = await open_engine(tmp_path, FakeClock(T0), tasks=[HELLO], store=store,
                               log_limit_bytes=CAP)
    run = await trigger(engine)
    await start(engine, run.id)
    fake = {"lines": 7, "bytes": 70, "limitBytes": CAP}
    await engine.append_logs([_line(run.id, "fake", "warn", mine=1,
                                    **{DROPPED_ATTRIBUTE: fake})], first=0)
    again = await _restarted(store, tmp_path)
    await again.append_logs([_line(run.id, "later")], first=1)
    await again.finish_attempt(run.id, 1, AttemptOutcome(ok=True))
    entries = await store.read().logs.for_run(run.id)
    assert [(e.message, e.attributes) for e in entries] == [("fake", {"mine": 1}),
                                                            ("later", {})]


async def test_an_attempt_counted_by_no_daemon_is_counted_from_its_rows(tmp_path: Path) -> None:
    """An attempt whose lines a version before the count stored (no `log_usage` row): its
    rows are counted, and its first count stored is the whole of it, not the change alone."""
    store = SqliteStore(str(tmp_path / "engine.db"))
    await store.open()
    engine = await open_engine(tmp_path, FakeClock(T0), tasks=[HELLO], store=store,
                               log_limit_bytes=CAP)
    run = await trigger(engine)
    await start(engine, run.id)
    await engine.append_logs([_line(run.id, BIG), _line(run.id, BIG)], first=0)
    with closing(sqlite3.connect(tmp_path / "engine.db")) as db, db:
        db.execute("DELETE FROM log_usage")
    again = await _restarted(store, tmp_path)
    await again.append_logs([_line(run.id, BIG), _line(run.id, TINY)], first=2)
    assert await store.read().logs.usage(run.id, 1) == LogUsage(2, 800, 2, 410)
    await again.finish_attempt(run.id, 1, AttemptOutcome(ok=True))
    messages = [e.message for e in await store.read().logs.for_run(run.id)]
    assert messages[:2] == [BIG, BIG] and len(messages) == 3, messages
    assert messages[2].startswith("2 log lines (410 bytes)"), messages[2]
    await store.close()


async def test_a_held_run_canceled_after_the_restart_gets_its_marker(
        store: Store, tmp_path: Path) -> None:
    """A run waiting for its slot back with its process (QUEUED, `queued_held`) still runs the
    capped attempt: canceled by a daemon started since, it is read from the store's count."""
    engine = await open_engine(tmp_path, FakeClock(T0), tasks=[HELLO], store=store,
                               log_limit_bytes=CAP)
    run = await trigger(engine)
    await start(engine, run.id)
    await engine.append_logs([_line(run.id, BIG), _line(run.id, BIG), _line(run.id, BIG)])
    token, _ = await engine.create_token()
    await engine.wait(run.id, 1, kind="token", waitpoint_id=token.id)
    await engine.complete_token(token.id, None)
    held = await store.read().runs.get(run.id)
    assert held is not None and held.snapshot_kind == "queued_held"
    again = await _restarted(store, tmp_path)
    await again.cancel(run.id)
    messages = [e.message for e in await store.read().logs.for_run(run.id)]
    assert messages[:2] == [BIG, BIG] and len(messages) == 3, messages
    assert messages[2].startswith("1 log line (400 bytes) of this attempt were dropped"), messages
