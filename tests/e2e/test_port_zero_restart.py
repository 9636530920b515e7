"""`port = 0` (a free port) across restarts: the next daemon on the home listens on the port the
last one had, while it is free, so the task processes a stopped daemon left running (its
waiting runs, docs/durability.md) find it — they call the url they were started with. Before,
a restart picked another port, the next daemon adopted those processes and handed them runs
they never heard of: the runs stayed EXECUTING or WAITING and held their slots for good."""

from __future__ import annotations

import socket
from pathlib import Path

from pg_cluster import free_port

from tests.e2e.conftest import DaemonProcess, wait_for, write_project


def _restart(d: DaemonProcess) -> None:
    assert d.stop() == 0
    d.port = 0  # as `trigger-local up` / `dev` with port = 0 start it, every time
    d.start()


def test_port_zero_restarts_on_the_same_port_and_waiting_runs_go_on(tmp_path: Path) -> None:
    home = tmp_path / "home"
    d = DaemonProcess(home, env={"TRIGGER_LOCAL_HOME": str(home),
                                 "TRIGGER_LOCAL_CHECKPOINTS": "off"})
    try:
        d.start()
        first = d.port
        d.register(write_project(tmp_path / "project"))
        run_id = d.trigger("token-waiter", {})
        token = wait_for(lambda: d.run(run_id)["metadata"].get("token"), 60,
                         what="the run to make its token")
        d.wait_status(run_id, "WAITING", timeout=60)
        _restart(d)
        assert d.port == first
        r = d.api("POST", f"/api/v1/waitpoints/tokens/{token}/complete", json={"data": {"ok": 1}})
        assert r.status_code == 200, r.text
        run = d.wait_status(run_id, timeout=60)
        assert (run["status"], run["output"]) == ("COMPLETED", {"ok": True, "output": {"ok": 1}})
        # the port taken by another program meanwhile: the next start picks another free one
        assert d.stop() == 0
        with socket.socket() as taken:
            taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            taken.bind(("127.0.0.1", first))
            taken.listen(1)
            d.port = 0
            d.start()
            assert d.port != first
        assert d.wait_status(d.trigger("hello", {"name": "x"}), timeout=60)["status"] == \
            "COMPLETED"
    finally:
        d.close()


def test_a_restart_on_another_fixed_port_is_found_by_the_processes_left_running(
        tmp_path: Path) -> None:
    """`up --port A`, stopped with a run waiting in its process, then `up --port B`: the
    process, which was started with A's url, finds B through the home's daemon.json when A
    refuses its connections, so the adopted run goes on (it used to stay WAITING)."""
    home = tmp_path / "home"
    d = DaemonProcess(home, port=free_port(),
                      env={"TRIGGER_LOCAL_HOME": str(home), "TRIGGER_LOCAL_CHECKPOINTS": "off"})
    try:
        d.start()
        first = d.port
        d.register(write_project(tmp_path / "project"))
        run_id = d.trigger("token-waiter", {})
        token = wait_for(lambda: d.run(run_id)["metadata"].get("token"), 60,
                         what="the run to make its token")
        d.wait_status(run_id, "WAITING", timeout=60)
        assert d.stop() == 0
        d.port = free_port()
        d.start()
        assert d.port != first
        r = d.api("POST", f"/api/v1/waitpoints/tokens/{token}/complete", json={"data": {"ok": 2}})
        assert r.status_code == 200, r.text
        run = d.wait_status(run_id, timeout=60)
        assert (run["status"], run["output"]) == ("COMPLETED", {"ok": True, "output": {"ok": 2}})
        assert d.wait_status(d.trigger("hello", {"name": "x"}), timeout=60)["status"] == \
            "COMPLETED"
    finally:
        d.close()
