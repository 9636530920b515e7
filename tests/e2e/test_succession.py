"""A shared task process that has taken most of its share of runs (`warm_runs_per_process`)
has its successor started beside it (executors/succession.py), against a real daemon and real
task processes: the runs after its share go to a process that is up already, and no run waits
for a boot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .conftest import DaemonProcess, wait_for, write_project

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


def test_a_batch_to_an_idle_pool_boots_one_shared_process(tmp_path: Path, project: Path) -> None:
    """docs/configuration.md, `spawn_concurrency`: while a shared process boots, no other
    starts. A batch to an idle daemon had its round's first runs (as many as the boot limit)
    each launch a process of their own, started together: they now wait for the launch under
    way and go to that one process."""
    home = tmp_path / "home"
    daemon = DaemonProcess(home, env={"TRIGGER_LOCAL_HOME": str(home),
                                      "TRIGGER_LOCAL_SPAWN_CONCURRENCY": "4"})
    daemon.start()
    try:
        daemon.register(project)
        _batch(daemon, 8)  # fewer than runs_per_process: one process has room for all
        status = _status(daemon)
        assert status["runs"].get("COMPLETED") == 8, status["runs"]
        assert status["executor"]["processes"] == 1, status["executor"]
    finally:
        daemon.close()


def test_a_replaced_version_starts_no_successor(tmp_path: Path, project: Path) -> None:
    """A process of a version its project has replaced retires as soon as it holds no run
    (executors/warm.py), so a successor started for it would boot only to retire unused: runs
    locked to the old version (`lockToVersion`) start none."""
    home = tmp_path / "home"
    daemon = DaemonProcess(home, env={"TRIGGER_LOCAL_HOME": str(home),
                                      "TRIGGER_LOCAL_CONCURRENCY": "4",
                                      "TRIGGER_LOCAL_WARM_RUNS_PER_PROCESS": "100"})
    daemon.start()
    try:
        old = daemon.register(project)["id"]
        daemon.register(write_project(tmp_path / "again"))  # the project's current version
        daemon.wait_status(daemon.trigger("hello", {"name": "first"}, lockToVersion=old))
        items = [{"task": "hello", "payload": json.dumps({"name": str(i)}),
                  "options": {"payloadType": "application/json", "lockToVersion": old}}
                 for i in range(79)]  # 80 of its 100: past three quarters
        r = daemon.api("POST", "/api/v1/tasks/batch", json={"items": items})
        assert r.status_code == 200, r.text
        wait_for(lambda: _status(daemon)["runs"].get("COMPLETED") == 80, 120,
                 what="the locked runs to finish")
        assert _status(daemon)["executor"]["successors"] == 0, _status(daemon)["executor"]
    finally:
        daemon.close()
