"""A daemon whose store is PostgreSQL (`TRIGGER_LOCAL_DATABASE_URL`, `up --database`), and the
CLI around it: `trigger-local migrate`, `doctor`'s database check, a bad or unreachable URL as
one clear line. Real daemon processes on a private PostgreSQL cluster (tests/pg_cluster.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from pg_cluster import Cluster

from tests.e2e.conftest import DaemonProcess, wait_for, write_project

pytestmark = pytest.mark.e2e


def cli(*args: str, home: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != "TRIGGER_LOCAL_DATABASE_URL"}
    environ.update(TRIGGER_LOCAL_HOME=str(home), **env)
    return subprocess.run([sys.executable, "-m", "trigger_local", *args], capture_output=True,
                          text=True, env=environ, timeout=90)


@pytest.fixture
def pg_daemon(tmp_path: Path, pg_cluster: Cluster) -> Iterator[DaemonProcess]:
    url = pg_cluster.fresh_url()
    d = DaemonProcess(tmp_path / "home", env={"TRIGGER_LOCAL_HOME": str(tmp_path / "home"),
                                              "TRIGGER_LOCAL_DATABASE_URL": url})
    d.database_url = url  # type: ignore[attr-defined]
    try:
        yield d.start()
    finally:
        d.close()


def test_a_daemon_on_postgres_runs_tasks_waits_tokens_and_children(
        pg_daemon: DaemonProcess, tmp_path: Path) -> None:
    d = pg_daemon
    d.register(write_project(tmp_path / "project"))
    hello = d.trigger("hello", {"name": "pg"})
    parent = d.trigger("parent", {"n": 2})
    waiter = d.trigger("waiter", {"seconds": 0.2})
    holder = d.trigger("token-waiter", {})
    token = wait_for(lambda: d.run(holder).get("metadata", {}).get("token"), 30, what="token")
    r = d.api("POST", f"/api/v1/waitpoints/tokens/{token}/complete", json={"data": {"v": 1}})
    assert r.status_code == 200, r.text
    for run_id in (hello, parent, waiter, holder):
        assert d.wait_status(run_id)["status"] == "COMPLETED", d.log_text()[-2000:]
    assert d.run(hello)["output"]["message"] == "Hello, pg!"
    assert d.run(holder)["output"] == {"ok": True, "output": {"v": 1}}
    assert not (d.home / "trigger-local.db").exists()  # nothing went to SQLite


def test_migrate_then_doctor_say_the_schema_version(tmp_path: Path, pg_cluster: Cluster) -> None:
    url = pg_cluster.fresh_url()
    first = cli("migrate", "--database", url, home=tmp_path / "home")
    assert first.returncode == 0, first.stderr
    assert "schema version 0 → " in first.stdout
    again = cli("migrate", "--database", url, home=tmp_path / "home")
    assert again.returncode == 0 and "nothing to apply" in again.stdout, again.stderr
    doctor = cli("doctor", "--json", home=tmp_path / "home", TRIGGER_LOCAL_DATABASE_URL=url)
    checks = {c["name"]: c for c in json.loads(doctor.stdout)["checks"]}
    assert checks["Database"]["level"] == "ok", checks["Database"]
    assert "schema version" in checks["Database"]["detail"]


def test_doctor_on_an_empty_database_says_to_migrate(tmp_path: Path,
                                                      pg_cluster: Cluster) -> None:
    doctor = cli("doctor", "--json", home=tmp_path / "home",
                 TRIGGER_LOCAL_DATABASE_URL=pg_cluster.fresh_url())
    check = {c["name"]: c for c in json.loads(doctor.stdout)["checks"]}["Database"]
    assert check["level"] == "warn" and "trigger-local migrate" in check["fix"], check


def test_a_bad_or_unreachable_url_is_one_line_and_exit_1(tmp_path: Path) -> None:
    bad = cli("up", "--database", "mysql://u:hunter2@h/db", home=tmp_path / "home")
    assert bad.returncode == 1
    assert "Unsupported database URL" in bad.stderr and "Traceback" not in bad.stderr
    assert "hunter2" not in bad.stderr
    gone = cli("migrate", "--database", "postgresql://u:hunter2@127.0.0.1:1/db",
               home=tmp_path / "home")
    assert gone.returncode == 1
    assert "cannot connect to the database" in gone.stderr and "Traceback" not in gone.stderr
    assert "hunter2" not in gone.stderr
    daemon = subprocess.run(
        [sys.executable, "-m", "trigger_local.daemon", "--home", str(tmp_path / "home2"),
         "--port", "0"], capture_output=True, text=True, timeout=60,
        env={**os.environ, "TRIGGER_LOCAL_DATABASE_URL": "postgresql://u:pw@127.0.0.1:1/db"})
    assert daemon.returncode == 1
    assert daemon.stderr.startswith("error: cannot connect to the database"), daemon.stderr
