"""Several daemons on one PostgreSQL database behave as one (docs/scaling.md): every run is
executed by exactly one of them, a queue's concurrency limit holds across them, a token
completed through one resumes a run held by the other within milliseconds (LISTEN/NOTIFY, not
polling), `status` lists the daemons, and a daemon killed with -9 has its runs taken over by
the other after the lease timeout. Real daemon processes on a private cluster (tests/pg_cluster.py),
each with its own home."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pg_cluster import Cluster

from tests.e2e.conftest import DaemonProcess, wait_for, write_project
from tests.e2e.criu_support import require_criu, wait_checkpointed

pytestmark = pytest.mark.e2e

LEASE_S = "5"  # short for the takeover test; a loaded 2-core machine misses 2 s beats
TASKS = '''
import asyncio, os
from trigger_local import task, queue, wait, metadata

one_at_a_time = queue(name="one-at-a-time", concurrency_limit=1)

@task(id="noop")
async def noop(payload, ctx):
    return {"daemon": os.environ.get("TRIGGER_LOCAL_HOME_MARK"), "pid": os.getpid()}

@task(id="serial", queue=one_at_a_time)
async def serial(payload, ctx):
    await asyncio.sleep(0.2)
    return {"daemon": os.environ.get("TRIGGER_LOCAL_HOME_MARK")}

@task(id="token-waiter", isolated=True)  # checkpointed in one test: a process of its own
async def token_waiter(payload, ctx):
    token = await wait.create_token(timeout="10m", idempotency_key=f"t-{ctx.run.id}")
    metadata.set("token", token.id)
    metadata.set("daemon", os.environ.get("TRIGGER_LOCAL_HOME_MARK"))
    result = await wait.for_token(token)
    return {"output": result.output}

@task(id="sleeper")
async def sleeper(payload, ctx):
    await asyncio.sleep(payload.get("seconds", 1))
    return {"attempt": ctx.attempt.number}
'''


def pg_daemon(tmp_path: Path, name: str, url: str) -> DaemonProcess:
    home = tmp_path / name
    return DaemonProcess(home, env={"TRIGGER_LOCAL_HOME": str(home), "TRIGGER_LOCAL_HOME_MARK":
                                    name, "TRIGGER_LOCAL_DATABASE_URL": url,
                                    "TRIGGER_LOCAL_LEASE_TIMEOUT_S": LEASE_S,
                                    "TRIGGER_LOCAL_HOLD_THRESHOLD_S": "3600"})


def started_pair(tmp_path: Path, url: str,
                 tasks: str) -> Iterator[tuple[DaemonProcess, DaemonProcess]]:
    """Daemons A and B on one database, a project of `tasks` registered through A."""
    a, b = pg_daemon(tmp_path, "a", url), pg_daemon(tmp_path, "b", url)
    try:
        a.start()
        b.start()
        a.register(write_project(tmp_path / "project", tasks))
        yield a, b
    finally:
        a.close()
        b.close()


@pytest.fixture
def pair(tmp_path: Path, pg_cluster: Cluster) -> Iterator[tuple[DaemonProcess, DaemonProcess]]:
    yield from started_pair(tmp_path, pg_cluster.fresh_url(), TASKS)


def test_every_run_runs_once_on_one_of_them_and_both_take_runs(
        pair: tuple[DaemonProcess, DaemonProcess]) -> None:
    a, b = pair
    ids = [(a if i % 2 else b).trigger("noop", {"i": i}) for i in range(40)]
    ran_on: dict[str, int] = {}
    for run_id in ids:
        run = a.wait_status(run_id, timeout=60)
        assert run["status"] == "COMPLETED", run
        assert len(b.api("GET", f"/api/v1/runs/{run_id}/attempts").json().get("data", [1])) >= 1
        ran_on[run["output"]["daemon"]] = ran_on.get(run["output"]["daemon"], 0) + 1
        assert run["attemptCount"] == 1, run
    assert set(ran_on) == {"a", "b"}, ran_on  # a version registered through A runs on B too


def _ran(daemon: DaemonProcess, run_id: str) -> tuple[str, str]:
    """The daemon a completed `noop` run ran on, and the status it went EXECUTING from."""
    run = daemon.wait_status(run_id, timeout=60)
    assert run["status"] == "COMPLETED", run
    history = daemon.api("GET", "/api/v1/local/events", params={"run_id": run_id}).json()["data"]
    [executing] = [e for e in history if e["type"] == "run.executing"]
    return run["output"]["daemon"], executing["data"]["from"]


def test_a_trigger_on_an_idle_daemon_starts_its_run_in_its_own_transaction(
        pair: tuple[DaemonProcess, DaemonProcess]) -> None:
    """On PostgreSQL too (engine/starting.py): a run its trigger's transaction started moves
    to EXECUTING from QUEUED (the dispatcher's, on a store daemons share, from DEQUEUED), on
    a warm process of the daemon it was triggered through. Sequential triggers through one
    daemon: once it has a warm process, a trigger that finds it idle starts its run at once
    (one arriving just as the other daemon's commit woke its dispatcher goes the long way)."""
    a, _ = pair
    # A has no process yet: its runs go the dispatchers' way, where B's (woken by A's NOTIFY,
    # its loop not busy answering the client) takes one more often than not — the first
    # 16 times in 26 on a loaded machine, then up to 9 in a row on its warm process, and a
    # loaded CI run saw none of 20 start at once. So first: runs until one ran on A, whose
    # process then stays warm
    for _ in range(60):
        daemon, moved_from = _ran(a, a.trigger("noop", {}))
        assert moved_from == "DEQUEUED", (daemon, moved_from)  # no warm process of A's yet
        if daemon == "a":
            break
    else:
        raise AssertionError("none of 60 runs triggered through A ran on A")
    at_once = []
    for _ in range(20):
        daemon, moved_from = _ran(a, a.trigger("noop", {}))
        if moved_from == "QUEUED":
            at_once.append(daemon)
    assert at_once and set(at_once) == {"a"}, at_once


def test_a_queue_limit_holds_across_daemons(pair: tuple[DaemonProcess, DaemonProcess]) -> None:
    a, b = pair
    ids = [(a if i % 2 else b).trigger("serial", {}) for i in range(6)]
    runs = [a.wait_status(run_id, timeout=60) for run_id in ids]
    spans = sorted((r["startedAt"], r["finishedAt"]) for r in runs)
    assert all(r["status"] == "COMPLETED" for r in runs)
    for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
        assert start >= end, spans  # never two at once, whichever daemon ran them


def test_a_token_completed_through_one_daemon_resumes_a_run_held_by_the_other(
        pair: tuple[DaemonProcess, DaemonProcess]) -> None:
    a, b = pair
    run_id = b.trigger("token-waiter", {})
    meta = wait_for(lambda: (m := a.run(run_id)["metadata"]).get("token") and m, 30)
    holder, other = (a, b) if meta["daemon"] == "a" else (b, a)
    wait_for(lambda: other.run(run_id)["status"] == "WAITING", 30)
    began = time.monotonic()
    r = other.api("POST", f"/api/v1/waitpoints/tokens/{meta['token']}/complete",
                  json={"data": {"via": "other"}})
    assert r.status_code == 200, r.text
    run = holder.wait_status(run_id, timeout=30)
    took = time.monotonic() - began
    assert run["status"] == "COMPLETED" and run["output"] == {"output": {"via": "other"}}
    assert run["attemptCount"] == 1  # resumed in its held process, not started again
    # the dispatcher's idle sleep is seconds long: only the NOTIFY makes this quick
    assert took < 1.5, took


def test_status_lists_both_daemons(pair: tuple[DaemonProcess, DaemonProcess]) -> None:
    a, b = pair
    daemons = wait_for(lambda: len(d := a.api("GET", "/api/v1/local/status").json()
                                   .get("daemons", [])) == 2 and d, 10)
    assert {d["url"] for d in daemons} == {a.url, b.url}
    assert all(d["executor"] == "process" and d["silent_s"] < 10 for d in daemons), daemons
    shown = subprocess.run([sys.executable, "-m", "trigger_local", "status"], text=True,
                           capture_output=True, timeout=60,
                           env={**os.environ, "TRIGGER_LOCAL_HOME": str(b.home)})
    assert shown.returncode == 0, shown.stderr
    assert "LAST HEARTBEAT" in shown.stdout and a.url in shown.stdout and b.url in shown.stdout


def test_a_delayed_run_fires_once_across_daemons(
        pair: tuple[DaemonProcess, DaemonProcess]) -> None:
    a, b = pair
    ids = [a.trigger("noop", {}, delay="1s") for _ in range(5)]
    for run_id in ids:
        assert a.wait_status(run_id, timeout=30)["status"] == "COMPLETED"
        starts = [e for e in b.api("GET", f"/api/v1/runs/{run_id}/trace").json()["events"]
                  if e["type"] in ("run.queued", "run.executing")]
        assert [e["type"] for e in starts] == ["run.queued", "run.executing"], starts


def test_a_delayed_run_made_through_one_daemon_fires_on_the_other(
        pair: tuple[DaemonProcess, DaemonProcess]) -> None:
    """B learns A's timer from A's commit (NOTIFY carries its due time), not from a store query
    of its own: A stops right after the trigger, and B is kept busy with runs of its own, each
    of which wakes its dispatcher, so its idle safety net (asking the store for the next timer
    after 5 s without a wake-up) never comes. B fires the delayed run all the same."""
    a, b = pair
    run_id = a.trigger("noop", {}, delay="2s")
    a.stop()
    last = [0.0]

    def fired() -> bool:
        if time.monotonic() - last[0] > 1.0:  # a run of B's own every second or so
            b.trigger("noop", {})
            last[0] = time.monotonic()
        return bool(b.run(run_id)["status"] == "COMPLETED")

    wait_for(fired, 60, interval=0.1, what="the delayed run to run on B")
    assert b.run(run_id)["output"]["daemon"] == "b"


def test_a_killed_daemons_runs_are_taken_over_after_the_lease(
        pair: tuple[DaemonProcess, DaemonProcess]) -> None:
    a, b = pair
    b.stop()  # only A takes the runs now, so the one to kill holds them
    ids = [a.trigger("sleeper", {"seconds": 3}) for _ in range(2)]
    for run_id in ids:
        a.wait_status(run_id, "EXECUTING", timeout=30)
    b.start()
    a.kill9()
    for run_id in ids:
        run = b.wait_status(run_id, timeout=60)
        assert run["status"] == "COMPLETED", run
        attempts = b.api("GET", f"/api/v3/runs/{run_id}").json()["attempts"]
        assert [x["status"] for x in attempts][-1] == "COMPLETED", attempts


def test_a_checkpoint_is_restored_where_it_was_made_else_the_run_restarts_from_its_wait(
        tmp_path: Path, pg_cluster: Cluster) -> None:
    """Checkpoint images are files on the host that dumped them. A's daemon is killed with its
    run checkpointed: after the lease, B runs it again from the top, and the idempotent token
    wait finds the token completed already (docs/scaling.md, "Checkpoints are local")."""
    require_criu()
    url = pg_cluster.fresh_url()
    a = pg_daemon(tmp_path, "a", url)
    a.env["TRIGGER_LOCAL_HOLD_THRESHOLD_S"] = "0"
    b = pg_daemon(tmp_path, "b", url)
    try:
        a.start()
        a.register(write_project(tmp_path / "project", TASKS))
        run_id = a.trigger("token-waiter", {})
        token = wait_for(lambda: a.run(run_id)["metadata"].get("token"), 30, what="token")
        wait_checkpointed(a, run_id)
        a.kill9()
        b.start()
        r = b.api("POST", f"/api/v1/waitpoints/tokens/{token}/complete", json={"data": 7})
        assert r.status_code == 200, r.text
        run = b.wait_status(run_id, timeout=60)
        assert run["status"] == "COMPLETED" and run["output"] == {"output": 7}, run
        # started again on B (A's images never left A): a second try, and as A's was
        # interrupted, not counted (attemptCount stays 1)
        assert len(run["attempts"]) == 2 and run["attemptCount"] == 1, run["attempts"]
        assert b.run(run_id)["metadata"]["daemon"] == "b"
    finally:
        a.close()
        b.close()


def test_a_daemon_back_from_a_pause_sees_the_others_commits_at_once(
        pair: tuple[DaemonProcess, DaemonProcess]) -> None:
    """A paused (SIGSTOP) for longer than the lease: B stops announcing its commits to it. A
    comes back with its listener connected all along (no hello), and a run is triggered
    through B before B's heartbeat round has read A's fresh row: once B reads it, B tells A of
    that commit, and A's SSE stream shows the run then, not at its keepalive 10 s later."""
    a, b = pair
    assert a.client is not None and a.proc is not None
    lines: list[tuple[float, str]] = []
    opened = threading.Event()

    def read() -> None:
        with httpx.Client(base_url=a.url, headers=a.client.headers, timeout=120) as client, \
                client.stream("GET", "/api/v1/local/stream") as response:
            for line in response.iter_lines():
                opened.set()
                lines.append((time.monotonic(), line))

    threading.Thread(target=read, daemon=True).start()
    assert opened.wait(10)
    os.kill(a.proc.pid, signal.SIGSTOP)
    try:
        # B believes A for a lease after each of its reads of A's fresh row: two leases
        time.sleep(2 * float(LEASE_S) + 1.5)
    finally:
        os.kill(a.proc.pid, signal.SIGCONT)
    began = time.monotonic()
    run_id = b.trigger("noop", {}, delay="1h")  # one commit, and no more of B's after it
    seen = wait_for(lambda: next((t for t, line in lines if run_id in line), None), 30)
    assert seen - began < 1.5, seen - began
