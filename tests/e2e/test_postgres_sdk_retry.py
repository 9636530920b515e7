"""The management SDK and the CLI across a PostgreSQL restart (docs/scaling.md, "When the
database does not answer"): while the server is down the daemon answers 503
`database_unavailable`, nothing of the request committed, and the client sends the request again
until the database answers — a trigger made during the restart gives one run, which completes.
A real daemon process on a private cluster of its own (tests/pg_cluster.py), stopped and started
again by the test."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pg_cluster import Cluster, require_postgres

from tests.e2e.conftest import DaemonProcess, write_project
from trigger_local.errors import DatabaseUnavailableError
from trigger_local.sdk.client import SyncApiClient

pytestmark = pytest.mark.e2e

DOWN_S = 3.0  # how long the server stays down: well inside the client's RETRY_FOR_S


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    own = Cluster(require_postgres()).start()  # not the session's: this one is stopped
    yield own
    own.stop()


@pytest.fixture
def daemon(tmp_path: Path, cluster: Cluster) -> Iterator[DaemonProcess]:
    d = DaemonProcess(tmp_path / "home", env={"TRIGGER_LOCAL_HOME": str(tmp_path / "home"),
                                              "TRIGGER_LOCAL_DATABASE_URL": cluster.fresh_url()})
    try:
        d.start()
        d.register(write_project(tmp_path / "project"))
        yield d
    finally:
        d.close()


def _down_for_a_while(cluster: Cluster) -> threading.Thread:
    """The server stopped now, and started again DOWN_S later (in a thread)."""
    cluster.halt()
    back = threading.Thread(target=lambda: (time.sleep(DOWN_S), cluster.serve()))
    back.start()
    return back


def test_the_sdk_triggers_through_a_database_restart(daemon: DaemonProcess,
                                                     cluster: Cluster) -> None:
    api = SyncApiClient(daemon.url, daemon.key)
    back = _down_for_a_while(cluster)
    try:
        answered = daemon.api("GET", "/api/v1/runs")
        assert answered.status_code == 503, answered.text  # what the client is told meanwhile
        assert answered.json()["code"] == DatabaseUnavailableError.code
        run_id = api.trigger("hello", '{"n": 1}')["id"]  # sent again until the database answers
        assert daemon.wait_status(run_id, timeout=60)["status"] == "COMPLETED"
        assert len(api.list_runs(task="hello")["data"]) == 1  # one run: nothing committed twice
    finally:
        back.join()
        api.close()


def test_the_cli_lists_runs_through_a_database_restart(daemon: DaemonProcess,
                                                       cluster: Cluster) -> None:
    run_id = daemon.trigger("hello", {"n": 2})
    assert daemon.wait_status(run_id, timeout=60)["status"] == "COMPLETED"
    back = _down_for_a_while(cluster)
    try:
        env = {k: v for k, v in os.environ.items() if k != "TRIGGER_LOCAL_DATABASE_URL"}
        listed = subprocess.run([sys.executable, "-m", "trigger_local", "runs", "ls"],
                                capture_output=True, text=True, timeout=90,
                                env={**env, "TRIGGER_LOCAL_HOME": str(daemon.home)})
        assert listed.returncode == 0, listed.stderr
        assert run_id in listed.stdout
    finally:
        back.join()
