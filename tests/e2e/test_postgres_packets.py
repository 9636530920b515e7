"""Packets (payloads of 128 KiB and more the SDKs offload, step results of that size) are the
PostgreSQL store's: every daemon of one database reads a packet another daemon took
(docs/scaling.md, "Packets"). Two real daemons on a private cluster (tests/pg_cluster.py), each
with its own home and key."""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from pg_cluster import Cluster

from tests.e2e.conftest import DaemonProcess, wait_for, write_project
from tests.e2e.test_postgres_daemons import pg_daemon, started_pair
from tests.e2e.test_project_confinement import Keys, _project

pytestmark = pytest.mark.e2e

TASKS = '''
import asyncio, os
from trigger_local import Retry, task, step, metadata

MARK = os.environ.get("TRIGGER_LOCAL_HOME_MARK")

@task(id="echo")
async def echo(payload, ctx):
    return {"daemon": MARK, "payload": payload}

@task(id="big-step")
async def big_step(payload, ctx):
    async def make():
        return {"made_by": MARK, "blob": "x" * 200_000}
    made = await step.run("make", make)
    metadata.set("stepped", MARK)
    if MARK == "a":
        await asyncio.sleep(600)  # killed meanwhile: B replays the attempt
    return {"made_by": made["made_by"], "size": len(made["blob"]), "daemon": MARK}

@task(id="big-retry", retry=Retry(max_attempts=2, min_timeout_s=5, max_timeout_s=5, factor=1))
async def big_retry(payload, ctx):
    async def make():
        return {"made_in": ctx.attempt.number, "blob": "x" * 200_000}
    made = await step.run("make", make)
    if ctx.attempt.number == 1:
        raise RuntimeError("once more")
    return {"made_in": made["made_in"], "size": len(made["blob"]), "attempt": ctx.attempt.number}
'''
BIG = {"blob": "y" * 200_000}  # as the SDKs offload it: 128 KiB or more
NAME = "run_1/payload.json"


@pytest.fixture
def pair(tmp_path: Path, pg_cluster: Cluster) -> Iterator[tuple[DaemonProcess, DaemonProcess]]:
    yield from started_pair(tmp_path, pg_cluster.fresh_url(), TASKS)


def _upload(d: DaemonProcess, name: str, data: bytes, key: str | None = None) -> None:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    asked = d.api("PUT", f"/api/v2/packets/{quote(name, safe='')}", headers=headers)
    assert asked.status_code == 200, asked.text
    put = httpx.put(asked.json()["presignedUrl"], content=data,
                    headers={"content-type": "application/json"})
    assert put.status_code == 200, put.text


def _served(d: DaemonProcess, name: str) -> httpx.Response:
    asked = d.api("GET", f"/api/v2/packets/{quote(name, safe='')}")
    assert asked.status_code == 200, asked.text
    return httpx.get(asked.json()["presignedUrl"])


def _stored(body: dict[str, object]) -> dict[str, object]:
    return {**body, "options": {"payloadType": "application/store"}}


def test_a_packet_uploaded_through_one_daemon_is_the_payload_of_a_run_the_other_executes(
        pair: tuple[DaemonProcess, DaemonProcess]) -> None:
    a, b = pair
    _upload(a, NAME, json.dumps(BIG).encode())
    a.stop()  # B alone is left to take and execute the run
    r = b.api("POST", "/api/v1/tasks/echo/trigger", json=_stored({"payload": NAME}))
    assert r.status_code == 200, r.text
    run = b.wait_status(r.json()["id"], timeout=60)
    assert run["status"] == "COMPLETED", run
    assert run["output"] == {"daemon": "b", "payload": BIG}


def test_a_packet_url_of_either_daemon_serves_the_packet_whichever_took_it(
        pair: tuple[DaemonProcess, DaemonProcess]) -> None:
    a, b = pair
    _upload(a, NAME, json.dumps(BIG).encode())
    served = _served(b, NAME)
    assert served.status_code == 200, served.text
    assert served.json() == BIG and served.headers["content-type"] == "application/json"
    # uploaded again through B: A, which holds the first one, serves the new one
    _upload(b, NAME, b'{"again": 2}')
    assert _served(a, NAME).json() == {"again": 2}
    assert _served(b, NAME).json() == {"again": 2}


def test_a_big_step_result_is_replayed_on_the_other_daemon(
        pair: tuple[DaemonProcess, DaemonProcess]) -> None:
    a, b = pair
    b.stop()  # A takes the run, stores the step's result (a packet), and is killed
    run_id = a.trigger("big-step", {})
    wait_for(lambda: a.run(run_id)["metadata"].get("stepped") == "a", 60, what="the step")
    b.start()
    a.kill9()
    run = b.wait_status(run_id, timeout=90)
    assert run["status"] == "COMPLETED", run
    # the step ran once, on A; B's attempt got its result back from the store
    assert run["output"] == {"made_by": "a", "size": 200_000, "daemon": "b"}, run["output"]


def test_another_projects_packet_is_404_on_every_daemon(
        pair: tuple[DaemonProcess, DaemonProcess], tmp_path: Path) -> None:
    a, b = pair
    a.register(_project(tmp_path / "pa", "a"))
    a.register(_project(tmp_path / "pb", "b"))
    on_a = Keys(a)  # each daemon's keys are its own; B learns of the projects A registered
    on_b = wait_for(lambda: (k := Keys(b)).key.keys() >= {"proj_a", "proj_b"} and k, 30,
                    what="B to serve both projects")
    _upload(a, NAME, b'{"secret": 1}', on_a.key["proj_a"])
    for method in ("GET", "PUT"):
        r = on_b.call("proj_b", method, f"/api/v2/packets/{quote(NAME, safe='')}")
        assert r.status_code == 404, (method, r.text)
    theirs = on_b.call("proj_b", "POST", "/api/v1/tasks/env-b/trigger",
                       json=_stored({"payload": NAME}))
    assert theirs.status_code == 404, theirs.text
    own = on_b.call("proj_a", "POST", "/api/v1/tasks/env-a/trigger",
                    json=_stored({"payload": NAME}))
    assert own.status_code == 200, own.text
    got = on_b.call("proj_a", "GET", f"/api/v2/packets/{quote(NAME, safe='')}")
    assert httpx.get(got.json()["presignedUrl"]).json() == {"secret": 1}


def test_retention_removes_a_packet_from_the_store_and_every_daemon(
        tmp_path: Path, pg_cluster: Cluster) -> None:
    url = pg_cluster.fresh_url()
    schema = url.rsplit("search_path=", 1)[1]
    a, b = pg_daemon(tmp_path, "a", url), pg_daemon(tmp_path, "b", url)
    for d in (a, b):
        d.env["TRIGGER_LOCAL_RETENTION_DAYS"] = str(2 / 86_400)  # 2 s
    try:
        a.start()
        b.start()
        a.register(write_project(tmp_path / "project", TASKS))
        _upload(a, NAME, json.dumps(BIG).encode())
        assert _served(b, NAME).status_code == 200  # B holds it now too
        run_id = b.api("POST", "/api/v1/tasks/echo/trigger",
                       json=_stored({"payload": NAME})).json()["id"]
        assert b.wait_status(run_id, timeout=60)["status"] == "COMPLETED"

        def rows() -> int:
            return int(pg_cluster.psql(f"SELECT count(*) FROM {schema}.packets").strip())

        assert rows() == 1
        wait_for(lambda: a.api("GET", f"/api/v3/runs/{run_id}").status_code == 404, 60,
                 what="the run pruned")
        wait_for(lambda: rows() == 0, 30, what="the packet's row deleted")
        for d in (a, b):
            assert _served(d, NAME).status_code == 404, d.home
    finally:
        a.close()
        b.close()


@contextlib.contextmanager
def packets_unreachable(pg_cluster: Cluster) -> Iterator[None]:
    """The database refuses new connections and the packets pool's are ended (the rest of the
    store keeps the connections it holds): a packet cannot be fetched until the block ends."""
    def from_template1(sql: str) -> str:  # (a database cannot refuse the session changing it)
        return subprocess.run([*pg_cluster.prefix, "psql", "-X", "-q", "-t", "-A", "-v",
                               "ON_ERROR_STOP=1", "-d",
                               pg_cluster.url.rsplit("/", 1)[0] + "/template1", "-c", sql],
                              check=True, capture_output=True, timeout=60, text=True).stdout

    from_template1("ALTER DATABASE postgres ALLOW_CONNECTIONS false")
    try:
        # the packets pool's connections: the only ones asyncpg resets at each release
        ended = from_template1("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                               "WHERE query LIKE 'SELECT pg_advisory_unlock_all()%' OR "
                               "query ~ '(FROM|INTO) packets'")
        assert "t" in ended.split(), ended
        yield
    finally:
        from_template1("ALTER DATABASE postgres ALLOW_CONNECTIONS true")


def test_a_run_whose_packet_cannot_be_fetched_at_its_start_waits_queued_and_runs_later(
        tmp_path: Path, pg_cluster: Cluster) -> None:
    """The dispatcher fetches a run's payload packet before the run's attempt starts: when the
    database refuses the packets' connection then (here: new connections refused, the packets
    pool's one ended), the run goes back to its queue and starts once the packet can be
    fetched, rather than sitting EXECUTING with no process given it."""
    d = pg_daemon(tmp_path, "a", pg_cluster.fresh_url())
    try:
        d.start()
        d.register(write_project(tmp_path / "project", TASKS))
        _upload(d, NAME, json.dumps(BIG).encode())
        first = d.trigger("echo", {"warm": 1})  # the store's own pools hold their connections
        assert d.wait_status(first, timeout=60)["status"] == "COMPLETED"
        r = d.api("POST", "/api/v1/tasks/echo/trigger",
                  json={"payload": NAME,
                        "options": {"payloadType": "application/store", "delay": "3s"}})
        assert r.status_code == 200, r.text
        run_id = r.json()["id"]
        with packets_unreachable(pg_cluster):
            time.sleep(8)  # the delay ends; its start cannot fetch the packet
            run = d.run(run_id)
            assert run["status"] in {"QUEUED", "DEQUEUED"}, run["status"]  # not EXECUTING
        run = d.wait_status(run_id, timeout=60)
        assert run["status"] == "COMPLETED", run
        assert run["output"] == {"daemon": "a", "payload": BIG}
    finally:
        d.close()


def test_a_retry_whose_step_packet_cannot_be_fetched_at_its_start_waits_queued(
        tmp_path: Path, pg_cluster: Cluster) -> None:
    """A retry replays its first attempt's records, here a big step result (a packet): those
    and their packets are read before the attempt starts, so a database that does not give the
    packet then puts the run back on its queue, to start once it can. Read after the start had
    committed (before), the failure left the run EXECUTING with no process given it."""
    d = pg_daemon(tmp_path, "a", pg_cluster.fresh_url())
    try:
        d.start()
        d.register(write_project(tmp_path / "project", TASKS))
        run_id = d.trigger("big-retry")
        # attempt 1 made the step's packet and failed: the retry starts 5 s after
        wait_for(lambda: (r := d.run(run_id))["attemptCount"] == 1
                 and r["status"] not in {"EXECUTING", "DEQUEUED"}, 60, what="attempt 1 failed")
        with packets_unreachable(pg_cluster):
            time.sleep(9)  # the retry is due; its start cannot fetch the step's packet
            run = d.run(run_id)
            assert run["status"] in {"QUEUED", "DEQUEUED", "DELAYED"}, run["status"]
            assert run["attemptCount"] == 1, run
        run = d.wait_status(run_id, timeout=60)
        assert run["status"] == "COMPLETED", run
        # the step ran once: attempt 2 replayed its result
        assert run["output"] == {"made_in": 1, "size": 200_000, "attempt": 2}
    finally:
        d.close()
