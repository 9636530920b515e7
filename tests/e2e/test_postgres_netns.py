"""Several hosts, for real: three network namespaces made by the test (needs root and `ip`),
joined by veth pairs on a private subnet — PostgreSQL in one, a daemon in each of the others —
and two more veth pairs from the test's own namespace to the daemons' APIs. 500 runs mixing
no-ops, duration waits, token waits and child runs go through both daemons; mid-way one daemon
is killed with -9, then the other's link to the database is set down for a few seconds. Every
run completes exactly once (one COMPLETED attempt; each task appends its run id and attempt to
a file on the shared filesystem as it finishes), none is lost or stuck. Everything the test
made is removed at the end. ~2-4 min on 2 busy cores: marked slow."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from pg_cluster import Cluster, require_postgres

from tests.e2e.conftest import DaemonProcess, wait_for, write_project
from tests.host_limit import host_limit

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(600)]

TASKS = '''
import os
from trigger_local import task, wait

def mark(ctx):
    with open(os.environ["TL_NETNS_LOG"], "a") as fh:
        fh.write(f"{ctx.run.id} {ctx.attempt.number}\\n")

@task(id="noop")
async def noop(payload, ctx):
    mark(ctx)
    return {"attempt": ctx.attempt.number}

@task(id="sleepy")
async def sleepy(payload, ctx):
    await wait.for_(seconds=0.5)
    mark(ctx)
    return {"attempt": ctx.attempt.number}

@task(id="tokened")
async def tokened(payload, ctx):
    result = await wait.for_token(payload["token"])
    mark(ctx)
    return {"attempt": ctx.attempt.number, "data": result.output}

@task(id="child")
async def child(payload, ctx):
    mark(ctx)
    return {"attempt": ctx.attempt.number}

@task(id="parent")
async def parent(payload, ctx):
    result = await child.trigger_and_wait({}, idempotency_key=f"child-of-{ctx.run.id}")
    mark(ctx)
    return {"attempt": ctx.attempt.number, "child": result.unwrap()}
'''


def sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, timeout=30)


def netns_or_skip() -> None:
    problem = None
    if os.geteuid() != 0:
        problem = "network namespaces need root"
    elif shutil.which("ip") is None:
        problem = "no `ip` command (iproute2)"
    if problem is None:
        return
    message = f"the netns test needs root and iproute2: {problem}"
    host_limit(message)


class Net:
    """ns `pg`, `a`, `b`; veths pg<->a (10.X.1.0/24), pg<->b (10.X.2.0/24), root<->a (10.X.3.0/24),
    root<->b (10.X.4.0/24), X random, names suffixed with the pid."""

    def __init__(self) -> None:
        tag = f"{os.getpid() % 100000}"
        self.x = random.randint(100, 250)
        self.ns = {n: f"tl{n}{tag}" for n in ("pg", "a", "b")}
        self.links: list[str] = []
        self.tag = tag

    def ip(self, name: str, n: int) -> str:
        return f"10.{self.x}.{n}.{1 if name == 'near' else 2}"

    def up(self) -> Net:
        for ns in self.ns.values():
            sh("ip", "netns", "add", ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        self._pair("pg", "a", 1)
        self._pair("pg", "b", 2)
        self._pair(None, "a", 3)
        self._pair(None, "b", 4)
        return self

    def _pair(self, near: str | None, far: str, subnet: int) -> None:
        left, right = f"v{self.tag}{far}{subnet}n", f"v{self.tag}{far}{subnet}f"
        sh("ip", "link", "add", left, "type", "veth", "peer", "name", right)
        self.links.append(left)
        if near is not None:
            sh("ip", "link", "set", left, "netns", self.ns[near])
        sh("ip", "link", "set", right, "netns", self.ns[far])
        near_cmd = ["ip", "-n", self.ns[near]] if near else ["ip"]
        sh(*near_cmd, "addr", "add", f"{self.ip('near', subnet)}/24", "dev", left)
        sh(*near_cmd, "link", "set", left, "up")
        sh("ip", "-n", self.ns[far], "addr", "add", f"{self.ip('far', subnet)}/24", "dev", right)
        sh("ip", "-n", self.ns[far], "link", "set", right, "up")

    def db_link(self, far: str, up: bool) -> None:
        subnet = 1 if far == "a" else 2
        sh("ip", "-n", self.ns[far], "link", "set", f"v{self.tag}{far}{subnet}f",
           "up" if up else "down")

    def down(self) -> None:
        for link in self.links:  # the root-side ends; the others go with their namespace
            subprocess.run(["ip", "link", "del", link], capture_output=True, timeout=30)
        for ns in self.ns.values():
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)


@pytest.fixture
def net() -> Iterator[Net]:
    netns_or_skip()
    n = Net()
    try:
        yield n.up()
    finally:
        n.down()


def daemon_in(net: Net, name: str, tmp_path: Path, url: str, log: Path) -> DaemonProcess:
    wrapper = tmp_path / f"python-in-{name}"
    wrapper.write_text(f"#!/bin/sh\nexec ip netns exec {net.ns[name]} {sys.executable} \"$@\"\n")
    wrapper.chmod(0o755)
    home = tmp_path / name
    api = net.ip("far", 3 if name == "a" else 4)
    return DaemonProcess(home, python=str(wrapper), env={
        "TRIGGER_LOCAL_HOME": str(home), "TRIGGER_LOCAL_HOST": api,
        "TRIGGER_LOCAL_DATABASE_URL": url, "TRIGGER_LOCAL_LEASE_TIMEOUT_S": "3",
        "TRIGGER_LOCAL_CHECKPOINTS": "off", "TL_NETNS_LOG": str(log),
        "TRIGGER_LOCAL_CONCURRENCY": "50"})


def test_500_runs_on_two_hosts_survive_a_kill_and_a_cut_link(net: Net, tmp_path: Path) -> None:
    cluster = Cluster(require_postgres(), host=net.ip("near", 1), port=5432,
                      prefix=("ip", "netns", "exec", net.ns["pg"]),
                      listen=f"{net.ip('near', 1)},{net.ip('near', 2)}").start()
    log = tmp_path / "finished.log"
    a = b = None
    try:
        cluster.psql("CREATE DATABASE trigger")
        url_a = f"postgresql://postgres@{net.ip('near', 1)}:5432/trigger?sslmode=disable"
        url_b = f"postgresql://postgres@{net.ip('near', 2)}:5432/trigger?sslmode=disable"
        a = daemon_in(net, "a", tmp_path, url_a, log).start(timeout=60)
        b = daemon_in(net, "b", tmp_path, url_b, log).start(timeout=60)
        a.register(write_project(tmp_path / "project", TASKS))
        tokens = [a.api("POST", "/api/v1/waitpoints/tokens", json={"timeout": "1h"}).json()["id"]
                  for _ in range(100)]
        kinds = ["noop"] * 200 + ["sleepy"] * 100 + ["tokened"] * 100 + ["parent"] * 100
        random.Random(14).shuffle(kinds)
        left = list(tokens)

        def trigger(i: int, kind: str) -> str:
            d = a if i % 2 else b
            payload = {"token": left.pop()} if kind == "tokened" else {}
            return d.trigger(kind, payload)

        ids = [trigger(i, kind) for i, kind in enumerate(kinds[:250])]
        a.kill9()  # mid-way, with runs executing and waiting on it
        ids += [b.trigger(kind, {"token": left.pop()} if kind == "tokened" else {})
                for kind in kinds[250:]]
        assert not left
        for token in tokens:
            r = b.api("POST", f"/api/v1/waitpoints/tokens/{token}/complete", json={"data": 1})
            assert r.status_code == 200, r.text
        net.db_link("b", up=False)  # B loses the database for a few seconds
        time.sleep(4)  # the outage itself: nothing to wait for
        net.db_link("b", up=True)
        a.start(timeout=60)  # A comes back: it must not run B's runs a second time

        def unsettled() -> dict[str, int]:
            counts = b.api("GET", "/api/v1/local/status").json()["runs"]
            return {s: n for s, n in counts.items() if s not in ("COMPLETED", "FAILED",
                                                                 "CRASHED", "CANCELED")}

        def settled() -> bool:
            return not unsettled()

        try:
            wait_for(settled, 300, interval=1, what="every run to finish")
        except AssertionError as exc:
            stuck = [r for r in map(b.run, ids) if r["status"] != "COMPLETED"][:3]
            traces = [(r["id"], r["status"], r.get("attemptCount"),
                       [e["type"] for e in b.api("GET", f"/api/v1/runs/{r['id']}/trace")
                        .json()["events"]]) for r in stuck]
            raise AssertionError(f"{exc}: still {unsettled()}: {traces}") from None
        with ThreadPoolExecutor(8) as pool:
            runs = list(pool.map(b.run, ids))
        assert [r["id"] for r in runs if r["status"] != "COMPLETED"] == []
        finished = {}
        for line in log.read_text().split("\n"):
            if line:
                run_id, attempt = line.split()
                finished.setdefault(run_id, set()).add(int(attempt))
        for run in runs:
            attempts = b.api("GET", f"/api/v3/runs/{run['id']}").json()["attempts"]
            completed = [x for x in attempts if x["status"] == "COMPLETED"]
            assert len(completed) == 1, (run["id"], attempts)
            assert run["output"]["attempt"] in finished.get(run["id"], set()), run
    finally:
        for d in (a, b):
            if d is not None:
                d.close()
        cluster.stop()
