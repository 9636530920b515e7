"""An environment no process can start with (E2BIG) is refused at the envvars routes, and one
stored anyway (before the limits existed) fails the runs that need it, with why, instead of
stopping the daemon's dispatcher (and the daemon after it, on every restart)."""

from __future__ import annotations

import sqlite3
import time
from contextlib import closing
from pathlib import Path

from trigger_local.limits import ENV_MAX_COUNT, ENV_TOTAL_MAX_BYTES, ENV_VAR_MAX_BYTES

from .conftest import DaemonProcess

BASE = "/api/v1/projects/proj_test/envvars/dev"


def test_routes_refuse_values_no_process_could_start_with(daemon: DaemonProcess,
                                                          project: Path) -> None:
    daemon.register(project)
    big = "x" * (ENV_VAR_MAX_BYTES + 1)
    for method, path, body in (("POST", BASE, {"name": "BIG", "value": big}),
                               ("POST", f"{BASE}/import", {"variables": {"BIG": big}})):
        r = daemon.api(method, path, json=body)
        assert r.status_code == 400, r.text
        assert "BIG" in r.json()["error"] and len(r.text) < 1000, r.text[:300]
    many = {f"V{i}": "1" for i in range(ENV_MAX_COUNT + 1)}
    r = daemon.api("POST", f"{BASE}/import", json={"variables": many})
    assert r.status_code == 400 and "at most" in r.json()["error"], r.text[:300]
    # each value fits, all of them do not: also when added one at a time
    part = "y" * (ENV_VAR_MAX_BYTES - 100)
    count = ENV_TOTAL_MAX_BYTES // ENV_VAR_MAX_BYTES
    for i in range(count):
        assert daemon.api("POST", BASE, json={"name": f"PART{i}", "value": part}).status_code \
            == 200
    r = daemon.api("POST", BASE, json={"name": "ONE_MORE", "value": part})
    assert r.status_code == 400 and "bytes" in r.json()["error"], r.text[:300]
    assert daemon.api("PUT", f"{BASE}/PART0", json={"value": big}).status_code == 400
    assert daemon.api("GET", BASE).json()[0]["value"] == part  # nothing of the refused stored
    # the variables that were accepted still let task processes start
    run = daemon.wait_status(daemon.trigger("hello", {"name": "env"}), timeout=60)
    assert run["status"] == "COMPLETED", run


def test_a_stored_environment_too_big_fails_its_runs_not_the_daemon(
        tmp_path: Path, project: Path) -> None:
    d = DaemonProcess(tmp_path / "home").start()
    try:
        d.register(project)
        d.stop()
        # as a daemon before the limits would have stored it (its runs could never start)
        with closing(sqlite3.connect(d.home / "trigger-local.db")) as db, db:
            db.execute("INSERT INTO env_vars (project, env, name, value, is_secret, updated_at) "
                       "VALUES ('proj_test', 'dev', 'HUGE', ?, 0, ?)",
                       ("z" * 300_000, time.time()))
        d.start()
        for _ in range(2):
            run = d.wait_status(d.trigger("hello", {"name": "big"}), timeout=60)
            assert run["status"] == "SYSTEM_FAILURE", run
            assert "environment is too large" in str(run.get("error")), run
        assert d.proc is not None and d.proc.poll() is None, d.log_text()[-2000:]
        assert d.api("DELETE", f"{BASE}/HUGE").status_code == 200
        run = d.wait_status(d.trigger("hello", {"name": "after"}), timeout=60)
        assert run["status"] == "COMPLETED", run
    finally:
        d.close()


def test_indexing_with_an_environment_too_big_is_a_clear_refusal(daemon: DaemonProcess,
                                                                  project: Path) -> None:
    r = daemon.api("POST", "/api/v1/local/versions",
                   json={"projectDir": str(project), "dirs": ["trigger"],
                         "env": {"HUGE": "z" * 300_000}})
    assert r.status_code == 422, r.text[:300]
    assert "environment is too large" in r.json()["error"], r.text[:300]
