"""Shared by the CRIU tests: is a working CRIU here (skip with the reason, or fail when CI=true),
and a project whose tasks keep local state across waits."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.host_limit import host_limit

from .conftest import DaemonProcess, wait_for, write_project

CK_TASKS = '''
import os, socket
from trigger_local import Retry, task, wait

@task(isolated=True, id="ck-duration")
async def ck_duration(payload, ctx):
    state = {"pid": os.getpid(), "counter": 41, "blob": "x" * 100_000}
    await wait.for_(seconds=payload["seconds"])
    state["counter"] += 1
    return {"pid_before": state["pid"], "pid_after": os.getpid(), "counter": state["counter"],
            "blob_ok": state["blob"] == "x" * 100_000}

@task(isolated=True, id="ck-token",
      retry=Retry(max_attempts=3, min_timeout_s=0.1, max_timeout_s=0.2, factor=1))
async def ck_token(payload, ctx):
    local = [1, 2, 3]
    first = await wait.for_token(payload["token"])
    local.append(first.output["n"])
    if payload.get("token2"):
        second = await wait.for_token(payload["token2"])
        local.append(second.output["n"])
    return {"local": local, "pid": os.getpid(), "attempt": ctx.attempt.number}

@task(isolated=True, id="ck-parent")
async def ck_parent(payload, ctx):
    parents = [os.getppid()]
    for token in payload["tokens"]:
        await wait.for_token(token)
        parents.append(os.getppid())
    return {"parents": parents, "pid": os.getpid()}

@task(isolated=True, id="ck-completes-own-token")
async def ck_completes_own_token(payload, ctx):
    # A thread holds a connection to the daemon across the start of the wait (the daemon does
    # not dump while it is open), completes the token once the run waits, then closes it.
    import threading, time, httpx

    connected = threading.Event()

    def complete():
        url, key = os.environ["TRIGGER_API_URL"], os.environ["TRIGGER_SECRET_KEY"]
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}) as http:
            while http.get(f"/api/v3/runs/{ctx.run.id}").json()["status"] != "WAITING":
                connected.set()
                time.sleep(0.005)
            http.post(f"/api/v1/waitpoints/tokens/{payload['token']}/complete",
                      json={"data": {"n": 1}})

    threading.Thread(target=complete).start()
    connected.wait(10)
    result = await wait.for_token(payload["token"])
    return {"n": result.output["n"], "pid": os.getpid()}

@task(isolated=True, id="ck-holds-socket")
async def ck_holds_socket(payload, ctx):
    conn = socket.create_connection(("127.0.0.1", payload["port"]))
    result = await wait.for_token(payload["token"])
    conn.close()
    return {"n": result.output["n"], "pid": os.getpid()}
'''


def criu_problem() -> str | None:
    """Why CRIU cannot be used here, or None when `criu check` passes."""
    if shutil.which("criu") is None:
        return "criu is not installed (scripts/setup-criu.sh --yes-upgrade-libc)"
    if os.geteuid() != 0:
        return "CRIU tests need root"
    check = subprocess.run(["criu", "check"], capture_output=True, text=True, timeout=60)
    if check.returncode != 0:
        return f"`criu check` fails: {(check.stdout + check.stderr).strip()[-300:]}"
    return None


def require_criu() -> None:
    problem = criu_problem()
    if problem is None:
        return
    host_limit(f"CRIU does not work: {problem}")


def ck_daemon(tmp_path: Path, **env: str) -> DaemonProcess:
    home = tmp_path / "home"
    base = {"TRIGGER_LOCAL_HOME": str(home), "TRIGGER_LOCAL_HOLD_THRESHOLD_S": "1"}
    return DaemonProcess(home, env={**base, **env})


def ck_project_daemon(tmp_path: Path) -> DaemonProcess:
    """A started checkpointing daemon with CK_TASKS registered (skips without CRIU)."""
    require_criu()
    d = ck_daemon(tmp_path).start()
    d.register(write_project(tmp_path / "project", CK_TASKS))
    return d


@pytest.fixture(name="ckd")
def ck_project(tmp_path: Path) -> Iterator[DaemonProcess]:
    """`ckd` of a test file that imports it: `ck_project_daemon`, closed after the test."""
    d = ck_project_daemon(tmp_path)
    yield d
    d.close()


def create_token(d: DaemonProcess, project: str = "proj_test") -> str:
    """A token of the test project (`proj_test`, or `project`): its runs may wait on it (a run
    cannot wait on another project's token) and its tasks' own key can complete it."""
    r = d.api("POST", "/api/v1/waitpoints/tokens", json={"timeout": "1h"},
              headers={"x-trigger-local-project": project})
    assert r.status_code == 200, r.text
    return str(r.json()["id"])


def complete_token(d: DaemonProcess, token: str, data: Any) -> None:
    r = d.api("POST", f"/api/v1/waitpoints/tokens/{token}/complete", json={"data": data})
    assert r.status_code == 200, r.text


def trace(d: DaemonProcess, run_id: str) -> dict[str, Any]:
    r = d.api("GET", f"/api/v1/runs/{run_id}/trace")
    assert r.status_code == 200, r.text
    return dict(r.json())


def checkpoints(d: DaemonProcess, run_id: str, status: str | None = None) -> list[dict[str, Any]]:
    return [c for c in trace(d, run_id)["checkpoints"] if status is None or c["status"] == status]


def wait_checkpointed(d: DaemonProcess, run_id: str, count: int = 1) -> list[dict[str, Any]]:
    """The run's recorded checkpoints, once there are `count` (a dump under way is `pending`)."""
    def recorded() -> list[dict[str, Any]]:
        return [c for c in checkpoints(d, run_id) if c["status"] != "pending"]

    return list(wait_for(lambda: len(recorded()) >= count and recorded(), 30,
                         what=f"{run_id} to be checkpointed"))


def events(d: DaemonProcess, run_id: str, type_: str) -> list[dict[str, Any]]:
    return [e for e in trace(d, run_id)["events"] if e["type"] == type_]
