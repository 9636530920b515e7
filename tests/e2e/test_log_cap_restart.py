"""The log cap of an attempt whose daemon is killed -9 and started again while its task process
goes on logging past the cap (the new daemon adopts the process; the process sends again the
burst its old daemon did not answer, and what it logged meanwhile): the count of what was
stored and dropped is in the store, so at the end there is one marker line, what is stored is
the first lines the task logged, each once, and stored + dropped is what the task sent. Real
daemon processes and a real task process, on SQLite and on PostgreSQL (tests/pg_cluster.py)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from pg_cluster import Cluster

from .conftest import DaemonProcess, wait_for, write_project

pytestmark = pytest.mark.e2e

CAP = 4096
LINE = "x" * 100

TASKS = '''
import time
from pathlib import Path
from trigger_local import task

@task(id="chatty", isolated=True)
def chatty(payload, ctx):
    here, sent = Path(payload["dir"]), 0
    while not (here / "stop").exists():
        print("x" * 100 + f" {sent:06d}")
        sent += 1
        if sent == 2000:  # far past the cap: from here on, a line every few ms
            (here / "past-cap").write_text("1")
        if sent >= 2000:
            time.sleep(0.003)
    return sent
'''


def _through_a_restart(tmp_path: Path, env: dict[str, str]) -> None:
    home = tmp_path / "home"
    d = DaemonProcess(home, env={"TRIGGER_LOCAL_HOME": str(home),
                                 "TRIGGER_LOCAL_LOG_LIMIT_BYTES": str(CAP), **env})
    d.start()
    try:
        d.register(write_project(tmp_path / "project", TASKS))
        run_id = d.trigger("chatty", {"dir": str(tmp_path)})
        wait_for((tmp_path / "past-cap").exists, 60, what="the task to log past the cap")
        time.sleep(1.0)  # its bursts (one every 0.2 s) reach the daemon, which drops them
        d.kill9()
        time.sleep(0.5)  # the process logs on with no daemon
        d.start()
        time.sleep(2.0)  # and with the new one, which adopted it
        (tmp_path / "stop").write_text("1")
        run = d.wait_status(run_id, timeout=60)
        assert run["status"] == "COMPLETED", run
        sent = run["output"]
        messages = d.log_messages(run_id)
    finally:
        d.close()
    kept = [m for m in messages if m.startswith(LINE)]
    markers = [m for m in messages if "were dropped" in m]
    assert len(markers) == 1, markers
    assert messages[-1] == markers[0]
    assert kept == [f"{LINE} {i:06d}" for i in range(len(kept))]  # the first ones, each once
    assert 0 < sum(len(m.encode()) for m in kept) <= CAP
    dropped = int(markers[0].split(" log line")[0].replace(",", ""))
    assert len(kept) + dropped == sent, (len(kept), dropped, sent, markers[0])
    assert markers[0].startswith(f"{dropped:,} log lines ({dropped * (len(LINE) + 7):,} bytes)")


def test_the_cap_counts_what_the_daemon_before_a_kill_dropped(tmp_path: Path) -> None:
    _through_a_restart(tmp_path, {})


def test_the_cap_counts_what_the_daemon_before_a_kill_dropped_on_postgres(
        tmp_path: Path, pg_cluster: Cluster) -> None:
    _through_a_restart(tmp_path, {"TRIGGER_LOCAL_DATABASE_URL": pg_cluster.fresh_url()})
