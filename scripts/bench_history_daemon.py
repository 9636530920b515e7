"""A real trigger-local daemon for scripts/bench_history.py: start it on a fixed port, time its
stops and starts, talk to it over HTTP; plus the percentile and machine helpers the bench shares."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent
ACTIVE = ("PENDING_VERSION", "DELAYED", "QUEUED", "DEQUEUED", "EXECUTING", "WAITING")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pct(values: list[float], p: float) -> float:
    """Nearest-rank percentile (with 30 samples, p99 is the slowest one)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def wait_for(check: Callable[[], bool], timeout: float, what: str, every: float = 0.05) -> None:
    """Poll `check` until it is true; SystemExit naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


class Daemon:
    """One daemon process over `home`, listening on `port` (kept across restarts, so the time to
    `/healthz` is measured from the spawn without waiting for daemon.json)."""

    def __init__(self, home: Path, log_path: Path, port: int | None = None,
                 compact_after_s: float | None = None) -> None:
        self.home, self.log_path = home, log_path
        self.compact_after_s = compact_after_s  # the daemon's setting (None: its default)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self._http: httpx.Client | None = None

    @property
    def http(self) -> httpx.Client:
        if self._http is None:
            key = (self.home / "secret_key").read_text().strip()
            self._http = httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {key}"},
                                      timeout=600)
        return self._http

    @property
    def pid(self) -> int:
        assert self.proc is not None, "daemon not started"
        return self.proc.pid

    def start(self, timeout: float = 600) -> float:
        """Spawn the daemon; seconds until `/healthz` answers 200 with ok=true."""
        env = {**os.environ, "TRIGGER_LOCAL_HOME": str(self.home)}
        if self.compact_after_s is not None:
            env["TRIGGER_LOCAL_COMPACT_AFTER_S"] = str(self.compact_after_s)
        with self.log_path.open("ab") as log:
            started = time.perf_counter()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "trigger_local.daemon", "--port", str(self.port), "--home",
                 str(self.home)],
                env=env, stdout=log, stderr=subprocess.STDOUT)
        with httpx.Client(timeout=5) as probe:
            while True:
                if self.proc.poll() is not None:
                    raise SystemExit("daemon exited with "
                                     f"{self.proc.returncode}:\n{self.log_tail()}")
                try:
                    r = probe.get(f"{self.url}/healthz")
                    if r.status_code == 200 and r.json().get("ok"):
                        return time.perf_counter() - started
                except httpx.TransportError:
                    pass
                if time.perf_counter() - started > timeout:
                    raise SystemExit(
                        f"daemon not healthy after {timeout:.0f} s:\n{self.log_tail()}")
                time.sleep(0.01)

    def stop(self, timeout: float = 120) -> float:
        """SIGTERM; seconds until the process has exited."""
        if self.proc is None:
            return 0.0
        if self._http is not None:
            self._http.close()
            self._http = None
        started = time.perf_counter()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise SystemExit(
                f"daemon did not stop within {timeout:.0f} s of SIGTERM (killed)") from None
        finally:
            self.proc = None
        return time.perf_counter() - started

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def register(self, project_dir: Path) -> str:
        """Index the bench project as its project's current version; the version id."""
        r = self.http.post("/api/v1/local/versions", json={"projectDir": str(project_dir),
                                                           "dirs": ["trigger"]})
        if r.status_code != 200:
            raise SystemExit(f"registering {project_dir} failed: {r.status_code} {r.text[:2000]}")
        return str(r.json()["id"])

    def pause(self, task: str) -> None:
        self.http.post(f"/api/v1/queues/{task}/pause",
                       json={"type": "task", "action": "pause"}).raise_for_status()

    def batch(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        r = self.http.post("/api/v1/tasks/batch", json={"items": items})
        if r.status_code != 200:
            raise SystemExit(f"batch trigger failed: {r.status_code} {r.text[:1000]}")
        return dict(r.json())

    def trigger(self, task: str, payload: Any = None, **options: Any) -> dict[str, Any]:
        r = self.http.post(f"/api/v1/tasks/{task}/trigger", json={
            "payload": json.dumps(payload), "options": {"payloadType": "application/json",
                                                        **options}})
        r.raise_for_status()
        return dict(r.json())

    def run(self, run_id: str) -> dict[str, Any]:
        r = self.http.get(f"/api/v3/runs/{run_id}")
        r.raise_for_status()
        return dict(r.json())

    def counts(self) -> dict[str, int]:
        """Runs per status, from `/api/v1/local/status`."""
        return dict(self.http.get("/api/v1/local/status").json()["runs"])

    def rss_mib(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")


def load_average() -> str:
    return " / ".join(Path("/proc/loadavg").read_text().split()[:3])


def machine() -> dict[str, str]:
    """What the docs say about where a figure was measured."""
    mem_kib = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal:"))
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True,
                              text=True).stdout.strip()
    # the daemon's own code is what the figures are about; the bench scripts may be newer
    commit = (f"{git('log', '-1', '--format=%h')}, trigger_local/ as of "
              f"{git('log', '-1', '--format=%h', '--', 'trigger_local')}")
    dirty = git("status", "--porcelain", "--untracked-files=no", "--", "trigger_local")
    return {"cpus": str(len(os.sched_getaffinity(0))), "ram_gib": f"{mem_kib / 2**20:.0f}",
            "kernel": os.uname().release,
            "python": sys.version.split()[0],
            "commit": commit + (" with local changes" if dirty else ""),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
