"""The daemon never half-dies: a background loop that fails is retried with back-off and
/healthz says so (503, naming it); when the cause goes away the loop recovers; a loop that
keeps failing past `loop_failure_limit` stops the daemon with exit code 1 and one line saying
why. The failure is real: the runs table is renamed under the running daemon."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import httpx

from .conftest import DaemonProcess, wait_for, write_project


def _rename(db: Path, old: str, new: str) -> None:
    conn = sqlite3.connect(db, timeout=10)
    try:
        conn.execute(f"ALTER TABLE {old} RENAME TO {new}")
        conn.commit()
    finally:
        conn.close()


def _health(d: DaemonProcess) -> tuple[int, dict[str, Any]]:
    r = httpx.get(f"{d.url}/healthz", timeout=10)
    return r.status_code, r.json()


def test_failing_dispatcher_makes_healthz_503_and_recovers(tmp_path: Path) -> None:
    home = tmp_path / "home"
    d = DaemonProcess(home, env={"TRIGGER_LOCAL_HOME": str(home)}).start()
    try:
        d.register(write_project(tmp_path / "project"))
        status, health = _health(d)
        assert status == 200 and health["ok"] is True
        assert health["loops"]["dispatcher"] == {"running": True, "failing": False, "failures": 0,
                                                 "error": None, "failing_since": None}
        # the dispatcher wakes for it in 1 s
        later = d.trigger("hello", {"name": "later"}, delay="1s")
        _rename(home / "trigger-local.db", "runs", "runs_moved")
        status, health = wait_for(lambda: (h := _health(d))[0] == 503 and h, 30,
                                  what="/healthz to report the failing dispatcher")
        assert health["ok"] is False and health["code"] == "unhealthy"
        dispatcher = health["loops"]["dispatcher"]
        assert (dispatcher["running"] is True and dispatcher["failing"] is True
                and dispatcher["failures"] >= 1)
        assert ("no such table: runs" in dispatcher["error"]
                and health["error"].startswith("dispatcher: "))
        _rename(home / "trigger-local.db", "runs_moved", "runs")
        wait_for(lambda: _health(d)[0] == 200, 30, what="/healthz to be 200 again")
        assert d.wait_status(later)["status"] == "COMPLETED"
        assert d.wait_status(d.trigger("hello", {"name": "after"}))["status"] == "COMPLETED"
    finally:
        d.close()


def test_loop_failing_past_the_limit_stops_the_daemon_with_exit_1(tmp_path: Path) -> None:
    home = tmp_path / "home"
    d = DaemonProcess(home, env={"TRIGGER_LOCAL_HOME": str(home),
                                 "TRIGGER_LOCAL_LOOP_FAILURE_LIMIT": "3"}).start()
    try:
        assert d.proc is not None
        d.register(write_project(tmp_path / "project"))
        d.trigger("hello", {}, delay="1s")  # the dispatcher wakes for it in 1 s
        _rename(home / "trigger-local.db", "runs", "runs_moved")
        assert wait_for(lambda: d.proc.poll() is not None, 30,
                        what="the daemon to give up") and d.proc.returncode == 1
        lines = [line for line in d.log_text().splitlines() if line.startswith("error: ")]
        assert lines == ["error: the dispatcher loop failed 3 times in a row (last: "
                         "OperationalError: no such table: runs): the daemon stopped. Its log says "
                         "more; start it again with `trigger-local up`."], d.log_text()[-3000:]
        assert not (home / "daemon.json").exists()
    finally:
        d.close()
