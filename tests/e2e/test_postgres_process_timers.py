"""On PostgreSQL no process keeps a wait's timer (docs/waits.md, "Who keeps a wait's timer"): a
run never resumes in place there, so a process's `timerDue` could not let it go on. The daemon's
hold answer gives a shared process no `until`, and its own timer fires at the due time, not
`process_timer_grace_s` later. A real daemon on a private PostgreSQL cluster."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pg_cluster import Cluster

from .conftest import DaemonProcess, wait_for, write_project
from .test_process_timers import TASKS, _history, _status

pytestmark = pytest.mark.e2e

NAP_S = 2.0
GRACE_S = 600.0  # a grace no run could be mistaken for being on time with
MARGIN_S = 90.0  # generous, for a loaded machine; far below the grace


@pytest.fixture
def pg_daemon(tmp_path: Path, pg_cluster: Cluster) -> Iterator[DaemonProcess]:
    home = tmp_path / "home"
    d = DaemonProcess(home, env={"TRIGGER_LOCAL_HOME": str(home),
                                 "TRIGGER_LOCAL_DATABASE_URL": pg_cluster.fresh_url(),
                                 "TRIGGER_LOCAL_CHECKPOINTS": "off",
                                 "TRIGGER_LOCAL_PROCESS_TIMER_GRACE_S": str(GRACE_S)})
    try:
        d.start()
        d.register(write_project(tmp_path / "project", TASKS))
        yield d
    finally:
        d.close()


@pytest.mark.timeout(300)
def test_a_wait_on_postgres_ends_at_its_due_time_not_a_grace_later(
        pg_daemon: DaemonProcess, tmp_path: Path) -> None:
    d = pg_daemon
    assert d.wait_status(d.trigger("warm"), timeout=120)["status"] == "COMPLETED"
    wait_for(lambda: _status(d)["channels"] >= 1, 60, interval=0.1,
             what="a task process on its channel")
    marks = tmp_path / "marks"
    marks.mkdir()
    run_id = d.trigger("nap", {"s": NAP_S, "marks": str(marks)})
    wait_for(lambda: d.run(run_id)["status"] in ("WAITING", "COMPLETED"), 90, interval=0.05,
             what="the run waiting")
    waited = time.monotonic()
    run = d.wait_status(run_id, timeout=NAP_S + MARGIN_S)
    assert run["status"] == "COMPLETED", run
    assert time.monotonic() - waited < NAP_S + MARGIN_S
    assert run["metadata"] == {"woke": True}, run
    # the process kept no timer: it never said one fired; the daemon's timer resumed the run
    assert int(_status(d)["channelFrames"].get("timerDue", 0)) == 0, _status(d)["channelFrames"]
    types = [e["type"] for e in _history(d, run_id)]
    assert "run.resumed" in types, types
    resumed = [e for e in _history(d, run_id) if e["type"] == "run.resumed"]
    assert all("resumed_by" not in e["data"] for e in resumed), resumed
