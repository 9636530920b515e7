"""The cap on one attempt's log volume (engine/log_cap.py) once the attempt has ended: lines of
it that come after its marker line — a process the daemon took for gone still sending, a spool
replayed — are dropped too, also by a daemon started since (it sees the marker on record), so
what is stored stays a prefix of what the task logged and the marker stays its last line."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from engine_support import HELLO, T0, open_engine, start, trigger

from trigger_local.clock import FakeClock
from trigger_local.config import DaemonSettings
from trigger_local.engine import AttemptOutcome, Engine
from trigger_local.engine.log_cap import DROPPED_ATTRIBUTE
from trigger_local.errors import TransactionRetryError
from trigger_local.store import SqliteStore, Store
from trigger_local.store.models import LogEntry, Run

CAP = 1024


def _line(run_id: str, text: str) -> LogEntry:
    return LogEntry(run_id=run_id, attempt=1, at=T0, level="info", message=text)


async def _messages(store: Store, run_id: str) -> list[str]:
    return [e.message for e in await store.read().logs.for_run(run_id)]


async def _started(tmp_path: Path, store: Store | None = None) -> tuple[Engine, Run]:
    """An engine whose attempts' logs are capped at CAP (on `store`, else a new SQLite file)
    and a run of hello started on it: attempt 1."""
    engine = await open_engine(tmp_path, FakeClock(T0), tasks=[HELLO], store=store,
                               log_limit_bytes=CAP)
    run = await trigger(engine)
    await start(engine, run.id)
    return engine, run


async def test_lines_of_a_capped_attempt_that_ended_are_dropped_after_its_marker(
        tmp_path: Path) -> None:
    engine, run = await _started(tmp_path)
    await engine.append_logs([_line(run.id, "a" * 600)])
    await engine.append_logs([_line(run.id, "b" * 600)])  # past the cap: dropped
    # the process is taken for gone: attempt 1 ends (the run is queued again), its marker
    await engine.worker_lost(run.id, 1, "gone", interrupted=True)
    marker = (await _messages(engine.store, run.id))[-1]
    assert marker.startswith("1 log line (600 bytes) of this attempt were dropped"), marker
    await engine.append_logs([_line(run.id, "c")])  # a later line of attempt 1
    assert await _messages(engine.store, run.id) == ["a" * 600, marker]
    await engine.store.close()

    # a daemon started since: it has no count of attempt 1, the marker on record says enough
    store = SqliteStore(str(tmp_path / "engine.db"))
    await store.open()
    again = Engine(store, FakeClock(T0), DaemonSettings(home=tmp_path, log_limit_bytes=CAP))
    await again.load()
    await again.append_logs([_line(run.id, "d")], first=1)  # a spool replayed from line 1
    await again.append_logs([_line(run.id, "e")])
    entries = await store.read().logs.for_run(run.id)
    assert [e.message for e in entries] == ["a" * 600, marker]
    assert entries[-1].attributes[DROPPED_ATTRIBUTE]["lines"] == 1
    await store.close()


def _refuse_once(engine: Engine, monkeypatch: pytest.MonkeyPatch,
                 when: Callable[[Sequence[LogEntry]], bool]) -> list[int]:
    """The store refuses the first unit of work that appends lines `when` picks, as
    PostgreSQL refuses one that conflicts with another daemon's (the engine runs it again)."""
    area = type(engine.store._write_view.logs)  # type: ignore[attr-defined]
    real = area.append
    refused: list[int] = []

    async def once(self: Any, entries: Sequence[LogEntry]) -> None:
        if not refused and when(entries):
            refused.append(1)
            raise TransactionRetryError("refused")
        await real(self, entries)
    monkeypatch.setattr(area, "append", once)
    return refused


async def test_a_burst_whose_transaction_was_refused_counts_once(
        store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    engine, run = await _started(tmp_path, store)
    refused = _refuse_once(engine, monkeypatch, lambda entries: True)
    await engine.append_logs([_line(run.id, "a" * 600)], first=0)  # refused, run again
    await engine.append_logs([_line(run.id, "b" * 300)], first=1)  # 900 bytes: within the cap
    assert refused
    await engine.finish_attempt(run.id, 1, AttemptOutcome(ok=True))
    assert await _messages(engine.store, run.id) == ["a" * 600, "b" * 300]  # and no marker


async def test_an_end_whose_transaction_was_refused_still_stores_the_marker(
        store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    engine, run = await _started(tmp_path, store)
    await engine.append_logs([_line(run.id, "a" * 600), _line(run.id, "b" * 600)], first=0)
    refused = _refuse_once(engine, monkeypatch,
                           lambda entries: DROPPED_ATTRIBUTE in entries[0].attributes)
    await engine.finish_attempt(run.id, 1, AttemptOutcome(ok=True))  # refused, run again
    assert refused
    messages = await _messages(engine.store, run.id)
    assert messages[0] == "a" * 600 and len(messages) == 2, messages
    assert messages[1].startswith("1 log line (600 bytes) of this attempt were dropped")


async def test_a_new_attempts_first_burst_reads_no_earlier_attempts_lines(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An attempt this daemon started has no line stored yet: its first burst does not page
    through the run's earlier attempts' lines (up to the cap each, 64 MiB by default) inside the
    write transaction, which holds every other write of the daemon meanwhile."""
    engine = await open_engine(tmp_path, FakeClock(T0), tasks=[HELLO])
    run = await trigger(engine)
    await start(engine, run.id)
    await engine.append_logs([_line(run.id, f"line {i}") for i in range(2500)])
    await engine.worker_lost(run.id, 1, "gone", interrupted=True)
    await start(engine, run.id)  # attempt 2
    area = type(engine.store._write_view.logs)  # type: ignore[attr-defined]
    real, read = area.for_run, []

    async def counted(self: Any, *args: Any, **kw: Any) -> list[LogEntry]:
        read.append(args)
        return await real(self, *args, **kw)
    monkeypatch.setattr(area, "for_run", counted)
    second = LogEntry(run_id=run.id, attempt=2, at=T0, level="info", message="again")
    await engine.append_logs([second])
    assert read == [], f"{len(read)} pages of the run's lines read for attempt 2's first burst"
    monkeypatch.undo()
    entries = await engine.store.read().logs.for_run(run.id, 2500, 10)
    assert [(e.attempt, e.message) for e in entries] == [(2, "again")]
    await engine.store.close()
