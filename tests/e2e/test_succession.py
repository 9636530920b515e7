"""A shared task process that has taken most of its share of runs (`warm_runs_per_process`)
has its successor started beside it (executors/succession.py), against a real daemon and real
task processes: the runs after its share go to a process that is up already, and no run waits
for a boot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .conftest import DaemonProcess, wait_for

ACTIVE = ("PENDING_VERSION", "DELAYED", "QUEUED", "DEQUEUED", "EXECUTING", "WAITING")


def _status(daemon: DaemonProcess) -> dict[str, Any]:
    r = daemon.api("GET", "/api/v1/local/status")
    assert r.status_code == 200, r.text
    return dict(r.json())


def _batch(daemon: DaemonProcess, count: int) -> None:
    items = [{"task": "hello", "payload": json.dumps({"name": str(i)}),
              "options": {"payloadType": "application/json"}} for i in range(count)]
    r = daemon.api("POST", "/api/v1/tasks/batch", json={"items": items})
    assert r.status_code == 200, r.text

    def idle() -> bool:
        runs = _status(daemon)["runs"]
        return not any(runs.get(s, 0) for s in ACTIVE)

    wait_for(idle, 120, interval=0.1, what=f"a batch of {count} to finish")


def test_a_shared_process_near_its_share_has_its_successor_started(tmp_path: Path,
                                                                   project: Path) -> None:
    home = tmp_path / "home"
    daemon = DaemonProcess(home, env={"TRIGGER_LOCAL_HOME": str(home),
                                      "TRIGGER_LOCAL_CONCURRENCY": "4",
                                      "TRIGGER_LOCAL_WARM_RUNS_PER_PROCESS": "100"})
    daemon.start()
    try:
        daemon.register(project)
        daemon.wait_status(daemon.trigger("hello", {"name": "first"}))  # one process up
        assert _status(daemon)["executor"]["processes"] == 1
        _batch(daemon, 79)  # 80 of its 100: past three quarters, with room left
        # the successor is up beside the first process, which still has room
        wait_for(lambda: _status(daemon)["executor"]["processes"] == 2, 20,
                 what="the successor to be up")
        executor = _status(daemon)["executor"]
        assert executor["successors"] == 1, executor
        # the first takes its last 20, the successor the rest: every run completes, and only
        # the successor's own share starts another
        _batch(daemon, 60)
        status = _status(daemon)
        assert status["runs"].get("COMPLETED") == 140, status["runs"]
        assert status["executor"]["successors"] == 1, status["executor"]
    finally:
        daemon.close()


def test_a_shared_process_takes_more_than_a_thousand_runs_by_default(tmp_path: Path,
                                                                     project: Path) -> None:
    """A boot costs ~0.2 s of CPU: with a share of 1,000 that was ~40 % of a no-op run's CPU in
    its task process. The default share is 10,000: 1,001 runs, one process, no successor."""
    home = tmp_path / "home"
    daemon = DaemonProcess(home, env={"TRIGGER_LOCAL_HOME": str(home),
                                      "TRIGGER_LOCAL_CONCURRENCY": "4"})
    daemon.start()
    try:
        daemon.register(project)
        daemon.wait_status(daemon.trigger("hello", {"name": "first"}))
        _batch(daemon, 500)
        _batch(daemon, 500)
        status = _status(daemon)
        assert status["runs"].get("COMPLETED") == 1001, status["runs"]
        assert status["executor"]["processes"] == 1, status["executor"]
        assert status["executor"]["successors"] == 0, status["executor"]
    finally:
        daemon.close()
