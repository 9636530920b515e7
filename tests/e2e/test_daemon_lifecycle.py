"""The daemon as a user meets it: up --detach, status, down, its home, its limits."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import httpx
from pg_cluster import free_port

from .conftest import DaemonProcess, wait_for, write_project

_NOBODY = free_port()


def _cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # with no daemon in `home` the CLI knocks on TRIGGER_LOCAL_PORT: a free one, not the default
    # where a daemon of another home may listen (a user's)
    env = {**os.environ, "TRIGGER_LOCAL_HOME": str(home), "TRIGGER_LOCAL_PORT": str(_NOBODY)}
    return subprocess.run([sys.executable, "-m", "trigger_local", *args], capture_output=True,
                          text=True, env=env, timeout=90)


def test_up_detach_status_down(tmp_path: Path) -> None:
    home = tmp_path / "home"
    r = _cli(home, "up", "--detach", "--port", "0")
    assert r.returncode == 0, r.stderr
    info = json.loads((home / "daemon.json").read_text())
    assert info["url"].startswith("http://127.0.0.1:")
    assert stat.S_IMODE((home / "secret_key").stat().st_mode) == 0o600
    assert httpx.get(f"{info['url']}/healthz").status_code == 200  # no key needed
    assert httpx.get(f"{info['url']}/api/v1/runs").status_code == 401
    status = _cli(home, "status")
    assert status.returncode == 0 and info["url"] in status.stdout + status.stderr
    again = _cli(home, "up", "--detach", "--port", "0")
    assert "already running" in again.stderr  # a second `up` points at the first, starts nothing
    down = _cli(home, "down")
    assert down.returncode == 0, down.stderr
    assert not (home / "daemon.json").exists()
    stopped = _cli(home, "status")
    assert stopped.returncode == 1 and "trigger-local up" in stopped.stderr


CAP_TASKS = '''
import asyncio
from trigger_local import task

@task(id="alone-sleeper", isolated=True)
async def alone_sleeper(payload, ctx):
    await asyncio.sleep(payload["seconds"])

@task(id="shared-sleeper")
async def shared_sleeper(payload, ctx):
    await asyncio.sleep(payload["seconds"])
'''


def _peaks(d: DaemonProcess, ids: list[str]) -> tuple[int, int]:
    """Until every run completed: the most executing at once, and the most task processes."""
    peak = processes = 0

    def all_done() -> bool:
        nonlocal peak, processes
        # one list read is one snapshot: reading the runs one by one counted a run that ended
        # and the one that took its place between two reads
        executing = d.api("GET", "/api/v1/runs", params={"filter[status]": "EXECUTING",
                                                         "page[size]": 100}).json()["data"]
        peak = max(peak, sum(r["id"] in ids for r in executing))
        statuses = [d.run(i)["status"] for i in ids]
        processes = max(processes,
                        d.api("GET", "/api/v1/local/status").json()["executor"]["processes"])
        return all(s == "COMPLETED" for s in statuses)

    wait_for(all_done, 60, interval=0.05, what="all runs")
    return peak, processes


def test_global_process_cap_limits_processes(tmp_path: Path) -> None:
    """`max_processes` caps processes: runs with a process each (isolated, sync) are capped by
    it; runs of async tasks share processes, so more of them execute at once."""
    home = tmp_path / "home"
    d = DaemonProcess(home, env={"TRIGGER_LOCAL_HOME": str(home),
                                 "TRIGGER_LOCAL_MAX_PROCESSES": "2"}).start()
    try:
        d.register(write_project(tmp_path / "project", CAP_TASKS))
        for task, most in (("alone-sleeper", 2), ("shared-sleeper", 5)):
            ids = [d.trigger(task, {"seconds": 0.6}) for _ in range(5)]
            peak, processes = _peaks(d, ids)
            assert 1 <= peak <= most and processes <= 2, (task, peak, processes)
    finally:
        d.close()


def test_warm_reuse_can_be_turned_off(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {"TRIGGER_LOCAL_HOME": str(home), "TRIGGER_LOCAL_WARM_RUNS_PER_PROCESS": "1"}
    d = DaemonProcess(home, env=env).start()
    try:
        d.register(write_project(tmp_path / "project"))
        first = d.wait_status(d.trigger("hello", {}))["output"]["pid"]
        second = d.wait_status(d.trigger("hello", {}))["output"]["pid"]
        assert first != second
    finally:
        d.close()
