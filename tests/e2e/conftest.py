"""End-to-end fixtures: a real daemon process on a free port, with its own home, and a real
project directory whose tasks run in real subprocesses."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from trigger_local.statuses import FINAL_STATUSES

TERMINAL = FINAL_STATUSES


def wait_for(predicate: Callable[[], Any], timeout: float = 20.0, interval: float = 0.02,
             what: str = "") -> Any:
    """Poll `predicate` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(interval)


class DaemonProcess:
    """`python -m trigger_local.daemon` in a subprocess, driven over HTTP."""

    def __init__(self, home: Path, port: int = 0, env: dict[str, str] | None = None,
                 python: str = sys.executable, cwd: Path | None = None) -> None:
        self.home = home
        self.port = port
        self.env = env or {}
        # another venv's interpreter runs that venv's trigger_local, from a `cwd` that does not
        # hold this checkout (`python -m` puts the current directory first on sys.path)
        self.python, self.cwd = python, cwd
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.key = ""
        self.client: httpx.Client | None = None

    def start(self, timeout: float = 20.0) -> DaemonProcess:
        self.home.mkdir(parents=True, exist_ok=True)
        info = self.home / "daemon.json"
        if info.exists():
            info.unlink()
        with (self.home / "daemon-test.log").open("ab") as log:
            self.proc = subprocess.Popen(
                [self.python, "-m", "trigger_local.daemon", "--home", str(self.home), "--port",
                 str(self.port)],
                stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **self.env},
                start_new_session=True, cwd=self.cwd)
        wait_for(lambda: info.exists() or self.proc.poll() is not None, timeout, what="daemon.json")
        if self.proc.poll() is not None:
            raise AssertionError("daemon exited: "
                                 f"{(self.home / 'daemon-test.log').read_text()[-3000:]}")
        data = json.loads(info.read_text())
        self.url = data["url"]
        self.port = int(self.url.rsplit(":", 1)[1])
        self.key = (self.home / "secret_key").read_text().strip()
        if self.client is not None:
            self.client.close()
        self.client = httpx.Client(base_url=self.url,
                                   headers={"Authorization": f"Bearer {self.key}"}, timeout=30)
        return self

    def kill9(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self, timeout: float = 30.0) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def log_text(self) -> str:
        path = self.home / "daemon-test.log"
        return path.read_text(errors="replace") if path.exists() else ""

    # -- API helpers --------------------------------------------------------------------------
    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        assert self.client is not None
        return self.client.request(method, path, **kwargs)

    def register(self, project: Path, dirs: list[str] | None = None) -> dict[str, Any]:
        r = self.api("POST", "/api/v1/local/versions", json={"projectDir": str(project),
                                                             "dirs": dirs or ["trigger"]})
        assert r.status_code == 200, r.text
        return r.json()

    def trigger(self, task: str, payload: Any = None, **options: Any) -> str:
        body: dict[str, Any] = {"options": options}
        if payload is not None:
            body["payload"] = json.dumps(payload)
            body["options"]["payloadType"] = "application/json"
        r = self.api("POST", f"/api/v1/tasks/{task}/trigger", json=body)
        assert r.status_code == 200, r.text
        return r.json()["id"]

    def run(self, run_id: str) -> dict[str, Any]:
        r = self.api("GET", f"/api/v3/runs/{run_id}")
        assert r.status_code == 200, r.text
        return r.json()

    def log_messages(self, run_id: str) -> list[str]:
        """Every log line's message of the run, read page by page through the API."""
        messages: list[str] = []
        after = None
        while True:
            page = self.api("GET", f"/api/v1/runs/{run_id}/logs",
                            params={} if after is None else {"after": after}).json()
            messages += [str(e.get("message")) for e in page["data"]]
            if not page["data"]:
                return messages
            after = page["data"][-1]["id"]

    def wait_status(self, run_id: str, statuses: set[str] | str = frozenset(TERMINAL),
                    timeout: float = 30) -> dict:
        wanted = {statuses} if isinstance(statuses, str) else set(statuses)
        return wait_for(lambda: (r := self.run(run_id))["status"] in wanted and r, timeout,
                        what=f"{run_id} to be {wanted}")

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.stop()
        if self.client is not None:
            self.client.close()
        _kill_workers(self.home)


def _cmdline(pid_dir: Path) -> list[str]:
    try:
        return (pid_dir / "cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def daemon_pids(under: Path) -> dict[int, str]:
    """Daemon processes (`python -m trigger_local.daemon`) whose home is `under` or inside it:
    {pid: command line}. Zombies (exited, not yet reaped) are not alive and are left out."""
    found: dict[int, str] = {}
    for pid_dir in Path("/proc").iterdir():
        if not pid_dir.name.isdigit():
            continue
        argv = _cmdline(pid_dir)
        if "trigger_local.daemon" not in argv or "--home" not in argv:
            continue
        home = argv[argv.index("--home") + 1] if argv.index("--home") + 1 < len(argv) else ""
        try:
            state = (pid_dir / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state != "Z" and Path(os.path.realpath(home)).is_relative_to(os.path.realpath(under)):
            found[int(pid_dir.name)] = " ".join(argv).strip()
    return found


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """A daemon started by these tests (its home under this run's tmp directory) that is still
    alive at the end is a leak: list it, kill it, and fail the run."""
    factory = getattr(session.config, "_tmp_path_factory", None)
    if factory is None:
        return
    try:
        base = factory.getbasetemp()
    except (OSError, ValueError):
        return
    leaked = daemon_pids(base)
    if not leaked:
        return
    for pid in leaked:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    lines = "\n".join(f"  pid {pid}: {argv}" for pid, argv in leaked.items())
    message = (f"\n{len(leaked)} daemon(s) started by the tests were still running (killed):"
               f"\n{lines}")
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(message, red=True)
    else:
        print(message, file=sys.stderr)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED


def _kill_workers(home: Path) -> None:
    """Leave no task process behind (a kill -9 test orphans them on purpose)."""
    marker = f"TRIGGER_LOCAL_HOME={home}".encode()
    for pid_dir in Path("/proc").iterdir():
        if not pid_dir.name.isdigit():
            continue
        try:
            environ = (pid_dir / "environ").read_bytes()
        except OSError:
            continue
        if marker in environ.split(b"\0") and b"TRIGGER_LOCAL_WORKER_ID=" in environ:
            try:
                os.kill(int(pid_dir.name), signal.SIGKILL)
            except ProcessLookupError:
                pass


TASKS = '''
import asyncio, os, sys, time
from trigger_local import task, schema_task, queue, Retry, wait, logger, metadata, AbortTaskRunError
from pydantic import BaseModel

@task(id="hello")
async def hello(payload, ctx):
    logger.info("saying hello", name=payload.get("name"))
    return {"message": f"Hello, {payload.get('name', 'world')}!", "pid": os.getpid(),
            "attempt": ctx.attempt.number}

@task(id="sync-hello")
def sync_hello(payload, ctx):
    return {"sum": payload["a"] + payload["b"]}

@task(id="sleeper")
async def sleeper(payload, ctx):
    logger.info("sleeping", seconds=payload.get("seconds", 1))
    await asyncio.sleep(payload.get("seconds", 1))
    return {"slept": payload.get("seconds", 1), "pid": os.getpid()}

@task(id="waiter")
async def waiter(payload, ctx):
    before = time.time()
    await wait.for_(seconds=payload.get("seconds", 1))
    return {"waited": time.time() - before, "pid": os.getpid()}

@task(id="child")
async def child(payload, ctx):
    if payload.get("fail"):
        raise AbortTaskRunError("child failed on purpose")
    return {"doubled": payload["n"] * 2}

@task(id="parent")
async def parent(payload, ctx):
    result = await child.trigger_and_wait({"n": payload["n"]})
    return {"child": result.unwrap(), "child_id": result.id}

@task(id="slow-parent")
async def slow_parent(payload, ctx):
    # a child that ends before its parent's wait reaches the daemon makes that wait answer
    # "continue": the trace shows the wait all the same (from its record, docs/waits.md)
    result = await sleeper.trigger_and_wait({"seconds": payload.get("seconds", 0.5)})
    return {"child": result.unwrap(), "child_id": result.id}

@task(id="batch-parent")
async def batch_parent(payload, ctx):
    results = await child.batch_trigger_and_wait([{"n": i} for i in range(payload["count"])])
    return {"values": [r.unwrap()["doubled"] for r in results]}

@task(id="flaky", retry=Retry(max_attempts=3, min_timeout_s=0.1, max_timeout_s=0.2, factor=1))
async def flaky(payload, ctx):
    if ctx.attempt.number < 3:
        raise RuntimeError(f"failure number {ctx.attempt.number}")
    return {"attempt": ctx.attempt.number}

@task(id="aborter", retry=Retry(max_attempts=5, min_timeout_s=0.1))
async def aborter(payload, ctx):
    raise AbortTaskRunError("no point retrying")

@task(id="exiter", retry=Retry(max_attempts=2, min_timeout_s=0.1, max_timeout_s=0.1))
def exiter(payload, ctx):
    os._exit(3)

@task(id="segfaulter", retry=Retry(max_attempts=1))
def segfaulter(payload, ctx):
    import ctypes
    ctypes.string_at(0)

@task(id="hanger", max_duration=2)
def hanger(payload, ctx):
    time.sleep(600)

slow_queue = queue("one-at-a-time", concurrency_limit=1)

@task(id="serial", queue=slow_queue)
async def serial(payload, ctx):
    start = time.time()
    await asyncio.sleep(0.3)
    return {"start": start, "end": time.time()}

class Resize(BaseModel):
    width: int
    height: int

@schema_task(id="resize", schema=Resize)
async def resize(payload: Resize, ctx):
    return {"area": payload.width * payload.height}

@task(id="traced")
async def traced(payload, ctx):
    with logger.trace("outer", step=1):
        logger.info("inside outer")
        with logger.trace("inner"):
            logger.warn("inside inner", level_two=True)
    metadata.set("progress", 0.5)
    metadata.increment("count", 2)
    metadata.append("items", "a")
    return {"ok": True}

@task(id="token-waiter")
async def token_waiter(payload, ctx):
    token = await wait.create_token(timeout=payload.get("timeout", "10m"))
    metadata.set("token", token.id)
    result = await wait.for_token(token)
    return {"ok": result.ok, "output": result.output if result.ok else None}
'''


def write_project(root: Path, tasks_source: str = TASKS) -> Path:
    (root / "trigger").mkdir(parents=True, exist_ok=True)
    (root / "trigger.toml").write_text('project = "proj_test"\ndirs = ["trigger"]\n')
    (root / "trigger" / "tasks.py").write_text(textwrap.dedent(tasks_source))
    return root


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return write_project(tmp_path / "project")


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[DaemonProcess]:
    d = DaemonProcess(tmp_path / "home", env={"TRIGGER_LOCAL_HOME": str(tmp_path / "home")})
    d.start()
    yield d
    d.close()


@pytest.fixture
def ready(daemon: DaemonProcess, project: Path) -> DaemonProcess:
    """A daemon with the test project indexed."""
    daemon.register(project)
    return daemon
