"""The harness of scripts/bench.py (and of the scripts that reuse it: bench_postgres.py,
bench_tokens.py): a daemon started in a temporary home with a project of benchmark tasks, an
HTTP client for it, and what the figures read from /proc (the daemon's CPU and RSS, the task
processes of the home)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import httpx

TASKS = '''
import time
from trigger_local import task, wait

@task(id="noop")
async def noop(payload, ctx):
    return None

@task(id="stamp")
async def stamp(payload, ctx):
    return {"started": time.time()}

@task(id="wait-long")
async def wait_long(payload, ctx):
    due = time.time() + payload["seconds"]
    await wait.for_(seconds=payload["seconds"])
    return {"late_s": time.time() - due}

@task(id="wait-1s")
async def wait_1s(payload, ctx):
    due = time.time() + 1.0
    await wait.for_(seconds=1)
    return {"late_s": time.time() - due}
'''
#: how long a latency probe waits before its first poll of the run it timed (Bench.wait_done)
PROBE_SETTLE_S = 0.02
ACTIVE = "PENDING_VERSION,DELAYED,QUEUED,DEQUEUED,EXECUTING,WAITING"


class Bench:
    def __init__(self, tmp: Path, concurrency: int, max_processes: int | None = None) -> None:
        self.home = tmp / "home"
        self.project = tmp / "project"
        (self.project / "trigger").mkdir(parents=True)
        (self.project / "trigger.toml").write_text('project = "proj_bench"\n')
        (self.project / "trigger" / "bench.py").write_text(textwrap.dedent(TASKS))
        env = {**os.environ, "TRIGGER_LOCAL_HOME": str(self.home),
               "TRIGGER_LOCAL_CONCURRENCY": str(concurrency)}
        if max_processes is not None:
            env["TRIGGER_LOCAL_MAX_PROCESSES"] = str(max_processes)
        self.log = (tmp / "daemon.log").open("wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "trigger_local.daemon", "--port", "0",
                                      "--home",
                                      str(self.home)], env=env, stdout=self.log,
                                     stderr=subprocess.STDOUT)
        info = self.home / "daemon.json"
        deadline = time.monotonic() + 30
        while not info.exists():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.log.flush()
                log = (tmp / "daemon.log").read_text()
                raise SystemExit("daemon did not start:\n" + log[-3000:])
            time.sleep(0.05)
        self.url = json.loads(info.read_text())["url"]
        key = (self.home / "secret_key").read_text().strip()
        self.http = httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {key}"},
                                 timeout=60)
        r = self.http.post("/api/v1/local/versions", json={"projectDir": str(self.project),
                                                           "dirs": ["trigger"]})
        r.raise_for_status()

    def close(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        # a stop leaves processes holding waiting runs running for the next daemon: none comes
        for pid in worker_pids(self.home):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def trigger(self, task: str, payload: Any = None, **options: Any) -> str:
        r = self.http.post(f"/api/v1/tasks/{task}/trigger",
                           json={"payload": json.dumps(payload),
                                 "options": {"payloadType": "application/json",
                                                                              **options}})
        r.raise_for_status()
        return r.json()["id"]

    def batch(self, task: str, count: int, payload: Any = None) -> None:
        items = [{"task": task, "payload": json.dumps(payload),
                  "options": {"payloadType": "application/json"}}] * count
        self.http.post("/api/v1/tasks/batch", json={"items": items}).raise_for_status()

    def run(self, run_id: str) -> dict[str, Any]:
        return self.http.get(f"/api/v3/runs/{run_id}").json()

    def wait_done(self, run_id: str, timeout: float = 60, first_poll_s: float = 0.0
                  ) -> dict[str, Any]:
        """Poll the run every 2 ms until it ended. `first_poll_s`: the first poll only that long
        after the call — a latency probe's, so that its reads do not land on the daemon (and on
        PostgreSQL, the server) while the run it times is being started."""
        deadline = time.monotonic() + timeout
        time.sleep(first_poll_s)
        while True:
            run = self.run(run_id)
            if run["isCompleted"] or run["status"] in ("EXPIRED", "TIMED_OUT"):
                return run
            if time.monotonic() > deadline:
                raise SystemExit(f"{run_id} did not finish: {run['status']}")
            time.sleep(0.002)

    def wait_idle(self, timeout: float) -> None:
        """Until no run is active (checked every 50 ms)."""
        deadline = time.monotonic() + timeout
        while self.active_runs():
            if time.monotonic() > deadline:
                raise SystemExit(f"{self.active_runs()} runs still active after {timeout:g} s")
            time.sleep(0.05)

    def active_runs(self) -> int:
        """Runs not yet finished, from the status endpoint's counts (cheap: one indexed query)."""
        counts = self.http.get("/api/v1/local/status").json()["runs"]
        return sum(counts.get(s, 0) for s in ACTIVE.split(","))

    def cpu_s(self) -> float:
        """The daemon process's CPU time so far (user + system)."""
        return cpu_s_of(self.proc.pid)

    def rss_mib(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]



def cpu_s_of(pid: int, reaped: bool = False) -> float:
    """Process `pid`'s CPU time so far (user + system); `reaped`: that of its children that
    exited and that it waited for (/proc/PID/stat's cutime and cstime) instead."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    at = 13 if reaped else 11
    return (int(fields[at]) + int(fields[at + 1])) / os.sysconf("SC_CLK_TCK")


def worker_pids(home: Path) -> list[int]:
    marker = f"TRIGGER_LOCAL_HOME={home}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            environ = (entry / "environ").read_bytes().split(b"\0") if entry.name.isdigit() else []
        except OSError:
            continue
        if marker in environ and any(e.startswith(b"TRIGGER_LOCAL_WORKER_ID=") for e in environ):
            pids.append(int(entry.name))
    return pids


def rss_mib_of(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0
