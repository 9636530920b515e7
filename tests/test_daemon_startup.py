"""Start-up in bounded time at any history size (issue #17: a million runs reach /healthz in
≤ 2 s). What a starting daemon reads — the engine's caches, adoption of task processes, the
dispatcher's first round, the retention loop's first batch — must never read a whole big
table: every statement it runs is EXPLAINed, on a history of thousands of finished runs, and
no plan step may scan runs, their events, snapshots, attempts, logs or tags."""

from __future__ import annotations

import asyncio
import os
import re
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import pytest
from store_support import RECOUNT_SQL

from trigger_local.config import DaemonSettings
from trigger_local.daemon_core import Daemon
from trigger_local.errors import ValidationError
from trigger_local.store import SqliteStore

RUNS = 5_000
#: tables that grow with the history: a start-up statement may only SEARCH them
BIG = ("runs", "events", "snapshots", "attempts", "logs", "run_tags")


async def _seed(db: Path) -> None:
    db.parent.mkdir(parents=True, exist_ok=True)
    store = SqliteStore(str(db))
    await store.open()
    await store.close()
    old = time.time() - 90 * 86_400  # older than retention: the first batch deletes some
    with closing(sqlite3.connect(db)) as conn:
        numbers = "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < ?) "
        conn.execute(
            numbers + "INSERT INTO runs (id, task_id, status, snapshot_id, snapshot_kind, queue, "
            "created_at, updated_at, queued_at, completed_at, payload_type, tags, project) "
            "SELECT printf('run_%06d', i), 'old', 'COMPLETED', printf('s_%06d', i), 'finished', "
            "'task/old', ? + i, ? + i, ? + i, ? + i, 'application/json', '[\"t\"]', "
            "'proj_local' FROM n", (RUNS - 1, old, old, old, old))
        for sql in (
            "INSERT INTO snapshots (id, run_id, kind, status, at) SELECT printf('s_%06d', i), "
            "printf('run_%06d', i), 'finished', 'COMPLETED', ? + i FROM n",
            "INSERT INTO events (run_id, type, at, data) SELECT printf('run_%06d', i), "
            "'run.completed', ? + i, '{}' FROM n",
            "INSERT INTO attempts (run_seq, number, status, started_at) SELECT "
            "i + 1, 1, 'COMPLETED', ? + i FROM n",  # the runs above are seq 1…RUNS
        ):
            conn.execute(numbers + sql, (RUNS - 1, old))
        conn.executescript(RECOUNT_SQL)  # the seeded runs counted, as an upgraded database's are
        conn.commit()


def _traced(statements: list[str]) -> Callable[..., sqlite3.Connection]:
    connect = SqliteStore._connect

    def traced(self: SqliteStore, first: str | None = None) -> sqlite3.Connection:
        conn = connect(self, first)
        conn.set_trace_callback(statements.append)
        return conn

    return traced


def _scans(db: Path, statements: list[str]) -> dict[str, list[str]]:
    """Each distinct SELECT/UPDATE/DELETE whose plan scans a big table, with its plan."""
    found: dict[str, list[str]] = {}
    scan = re.compile(rf"^SCAN ({'|'.join(BIG)})\b(?:.* INDEX (\w+))?")
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        # a partial index holds only the runs it is about (the live ones): scanning it is fine
        partial = {str(n) for n, sql in conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")
            if " WHERE " in str(sql).upper()}
        for text in dict.fromkeys(statements):
            if not re.match(r"\s*(WITH|SELECT|UPDATE|DELETE)", text, re.IGNORECASE):
                continue
            steps = [str(r[3]) for r in conn.execute(f"EXPLAIN QUERY PLAN {text}")]
            scans = [m for m in map(scan.match, steps) if m and m.group(2) not in partial]
            if scans:
                found[text] = steps
    return found


async def test_start_up_reads_no_big_table_whole(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    settings = DaemonSettings(home=home, port=0)
    await _seed(settings.db_path)
    statements: list[str] = []
    monkeypatch.setattr(SqliteStore, "_connect", _traced(statements))
    daemon = Daemon(settings)
    await daemon.start()
    try:
        # the dispatcher's first round (its timers) and the retention loop's first batch
        deadline = time.monotonic() + 60
        while not (any("runs_due_delay" in s for s in statements)
                   and any("DELETE FROM runs" in s for s in statements)):
            assert time.monotonic() < deadline, statements[-20:]
            await asyncio.sleep(0.01)
    finally:
        await daemon.stop()
    assert _scans(settings.db_path, statements) == {}


CHECK_OVERLAP = """
import asyncio, sys, time
import trigger_local.daemon as d
from trigger_local.config import DaemonSettings
from trigger_local.errors import StartupError

def check(settings):
    loaded = lambda: {m for m in ("trigger_local.daemon_core", "trigger_local.api.app")
                      if m in sys.modules}
    at_start = loaded()
    deadline = time.monotonic() + 60
    while len(loaded()) < 2 and time.monotonic() < deadline:
        time.sleep(0.005)
    raise StartupError(f"at start {sorted(at_start)}, meanwhile {sorted(loaded())}")

d.check_home_database = check
try:
    asyncio.run(d._main(DaemonSettings.from_env()))
except StartupError as exc:
    print(exc.message)
"""


def test_the_database_check_runs_while_the_daemon_is_imported(tmp_path: Path) -> None:
    """The bounded quick_check (its whole second at a million runs) starts before the daemon's
    own modules and the API are imported, not after them: start-up pays for the longer of the
    two, not their sum."""
    env = {**os.environ, "TRIGGER_LOCAL_HOME": str(tmp_path / "home")}
    done = subprocess.run([sys.executable, "-c", CHECK_OVERLAP], env=env, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.stdout.strip() == (
        "at start [], meanwhile ['trigger_local.api.app', 'trigger_local.daemon_core']"), \
        done.stdout + done.stderr


@pytest.mark.parametrize(("name", "raw", "words"), [
    ("CONCURRENCY", "-1", "at least 1"), ("CONCURRENCY", "0", "at least 1"),
    ("MAX_PROCESSES", "0", "at least 1"), ("RUNS_PER_PROCESS", "0", "at least 1"),
    ("PAYLOAD_LIMIT_BYTES", "-5", "at least 1024"), ("SHUTDOWN_GRACE_S", "nan", "at least 0"),
    ("SHUTDOWN_GRACE_S", "-1", "at least 0"), ("HOLD_THRESHOLD_S", "inf", "at least 0"),
    ("EVICT_AFTER_S", "-1", "at least 0"), ("LEASE_TIMEOUT_S", "0", "at least 0.1"),
    ("RETENTION_DAYS", "-1", "at least 0"), ("CHECKPOINTS", "maybe", "one of auto, off"),
    ("CHECKPOINT_WAITS", "duration,bogus", "'bogus' is not a kind of wait"),
    ("LOG_JSON", "perhaps", "is not true or false (or 1/0, yes/no, on/off)"),
    ("CONCURRENCY", "1.5", "is not a whole number: set it to one, or unset it"),
    ("PORT", "abc", "is not a whole number: set it to one, or unset it"),
    ("SHUTDOWN_GRACE_S", "soon", "is not a number: set it to one, or unset it"),
    # no upper bound used to be checked: a db_check_s of 1e300 overflowed its timer thread
    ("DB_CHECK_S", "1e300", "at most 315,360,000"), ("SHUTDOWN_GRACE_S", "1e300", "at most"),
    ("CONCURRENCY", "99999999999999999999999", "at most 1,000,000"),
    ("PAYLOAD_LIMIT_BYTES", "100000000000000", "at most 536,870,912"),
    ("RETENTION_DAYS", "1e300", "at most 3,650"),
    ("LOG_LIMIT_BYTES", "100", "at least 1024"), ("LOG_LIMIT_BYTES", "lots", "not a whole number"),
    ("LOG_LIMIT_BYTES", "2000000000000", "at most 1,099,511,627,776"),
])
def test_a_setting_out_of_range_is_refused_naming_it(monkeypatch: pytest.MonkeyPatch, name: str,
                                                     raw: str, words: str) -> None:
    """Out-of-range settings used to be taken as they were: a concurrency of -1 started no
    run, a NaN grace never ended, `checkpoints=maybe` meant auto."""
    monkeypatch.setenv(f"TRIGGER_LOCAL_{name}", raw)
    with pytest.raises(ValidationError) as caught:
        DaemonSettings.from_env()
    assert f"TRIGGER_LOCAL_{name}" in caught.value.message and words in caught.value.message
    # every setting's error points at where the settings are described (CHECKPOINTS' and
    # CHECKPOINT_WAITS' did not)
    assert caught.value.message.endswith("(docs/configuration.md)"), caught.value.message


def test_settings_in_range_are_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, raw in (("CONCURRENCY", "1"), ("EVICT_AFTER_S", "0"), ("MAX_HELD_RUNS", "0"),
                      ("CHECKPOINT_WAITS", "duration, run"), ("LOG_JSON", "off"),
                      ("CHECKPOINTS", "off"), ("RETENTION_DAYS", "0.5")):
        monkeypatch.setenv(f"TRIGGER_LOCAL_{name}", raw)
    settings = DaemonSettings.from_env()
    assert (settings.concurrency, settings.evict_after_s, settings.log_json) == (1, 0.0, False)
