"""The cap on one attempt's log volume (engine/log_cap.py) once the attempt has ended: lines of
it that come after its marker line — a process the daemon took for gone still sending, a spool
replayed — are dropped too, also by a daemon started since (it sees the marker on record), so
what is stored stays a prefix of what the task logged and the marker stays its last line."""

from __future__ import annotations

from pathlib import Path

from engine_support import HELLO, T0, open_engine, start, trigger

from trigger_local.clock import FakeClock
from trigger_local.config import DaemonSettings
from trigger_local.engine import Engine
from trigger_local.engine.log_cap import DROPPED_ATTRIBUTE
from trigger_local.store import SqliteStore
from trigger_local.store.models import LogEntry

CAP = 1024


def _line(run_id: str, text: str) -> LogEntry:
    return LogEntry(run_id=run_id, attempt=1, at=T0, level="info", message=text)


async def _messages(store: SqliteStore, run_id: str) -> list[str]:
    return [e.message for e in await store.read().logs.for_run(run_id)]


async def test_lines_of_a_capped_attempt_that_ended_are_dropped_after_its_marker(
        tmp_path: Path) -> None:
    engine = await open_engine(tmp_path, FakeClock(T0), tasks=[HELLO], log_limit_bytes=CAP)
    run = await trigger(engine)
    await start(engine, run.id)
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
