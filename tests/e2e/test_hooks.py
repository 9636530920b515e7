"""Lifecycle hooks and middleware end to end (docs/hooks.md): a real daemon runs tasks whose
hooks append a line to a file named in the payload; the test reads the file for the order."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import DaemonProcess, wait_for, write_project
from .criu_support import ck_daemon, complete_token, create_token, require_criu, wait_checkpointed

GLOBAL_HOOKS = '''
import contextlib, json
from trigger_local import tasks

def note(payload, line):
    with open(payload["log"], "a") as f:
        f.write(line + "\\n")

@contextlib.asynccontextmanager
async def outer(payload, ctx):
    note(payload, f"mw-global>{ctx.attempt.number}")
    yield
    note(payload, f"mw-global<{ctx.attempt.number}")

tasks.middleware("outer", outer)
tasks.on_start(lambda payload: note(payload, "start-global"))
tasks.on_start_attempt("sa", lambda payload, ctx: note(payload,
                                                      f"attempt-global{ctx.attempt.number}"))
tasks.on_success("ok", lambda payload, output: note(payload, f"success-global:{output}"))
tasks.on_failure("fail", lambda payload, error: note(payload, f"failure-global:{error}"))
tasks.on_complete("done", lambda payload, result: note(payload, f"complete-global:{result.ok}"))
tasks.on_cancel("cancel", lambda payload: note(payload, "cancel-global"))
tasks.catch_error("catch", lambda payload, ctx: note(payload, f"catch-global{ctx.attempt.number}"))
'''

TASKS = '''
import contextlib
from datetime import datetime, timedelta, UTC
from trigger_local import AbortTaskRunError, Retry, locals, task, wait

def note(payload, line):
    with open(payload["log"], "a") as f:
        f.write(line + "\\n")

FAST = Retry(max_attempts=3, min_timeout_s=0.05, max_timeout_s=0.1, randomize=False)
SLOW = Retry(max_attempts=3, min_timeout_s=300, max_timeout_s=300, randomize=False)
DB = locals.create("db")

@contextlib.asynccontextmanager
async def inner(payload, ctx):
    note(payload, "mw-task>")
    locals.set(DB, {"conn": f"conn{ctx.attempt.number}"})
    yield
    note(payload, "mw-task<")

def on_start(payload, ctx, init):
    note(payload, f"start-task{ctx.attempt.number}")

@task(id="ok", middleware=inner, on_start=on_start, retry=FAST,
      init=lambda payload: {"ready": True})
async def ok(payload, ctx):
    note(payload, "run")
    return {"db": locals.get(DB)["conn"]}

@ok.on_success
def ok_success(payload, output, init):
    note(payload, f"success-task:{output['db']}:{init['ready']}")

@ok.on_complete
async def ok_complete(payload, result):
    note(payload, f"complete-task:{result.data}")

@task(id="fails", retry=Retry(max_attempts=2, min_timeout_s=0.05, max_timeout_s=0.1),
      on_failure=lambda payload, error: note(payload, f"failure-task:{error}"),
      catch_error=lambda payload: note(payload, "catch-task"))
async def fails(payload, ctx):
    note(payload, f"run{ctx.attempt.number}")
    raise RuntimeError(f"boom{ctx.attempt.number}")

def start_fails_once(payload, ctx):
    note(payload, f"start{ctx.attempt.number}")
    raise RuntimeError("on_start failed")

def success_fails(payload):
    raise RuntimeError("on_success failed")

@task(id="start-fails", retry=FAST, on_start=start_fails_once, on_success=success_fails)
async def start_fails(payload, ctx):
    note(payload, f"run{ctx.attempt.number}")
    return ctx.attempt.number

def decide(payload, error, ctx):
    choice = payload["choice"]
    if ctx.attempt.number > 1:
        return None
    if choice == "skip":
        return {"skip_retrying": True, "error": ValueError("changed by catch_error")}
    if choice == "delay":
        return {"retry_delay_in_ms": 50}
    if choice == "at":
        return {"retry_at": datetime.now(UTC) + timedelta(milliseconds=100)}
    if choice == "retry-none":
        return {"retry": Retry(max_attempts=1)}
    if choice == "error-only":
        return {"error": KeyError("replaced")}
    return None

@task(id="decides", retry=SLOW, catch_error=decide)
async def decides(payload, ctx):
    note(payload, f"run{ctx.attempt.number}")
    if ctx.attempt.number == 1:
        if payload["choice"] == "abort":
            raise AbortTaskRunError("aborted")
        raise RuntimeError("first attempt fails")
    return {"attempt": ctx.attempt.number}

@contextlib.asynccontextmanager
async def bad_mw(payload, ctx):
    if ctx.attempt.number == 1:
        raise RuntimeError("middleware broke")
    yield

@task(id="mw-fails", middleware=bad_mw, retry=FAST,
      on_failure=lambda payload: note(payload, "failure-task"))
async def mw_fails(payload, ctx):
    return ctx.attempt.number

@task(id="waits", on_wait=lambda payload, wait: note(payload, f"wait:{wait['type']}"),
      on_resume=lambda payload, wait: note(payload, f"resume:{wait['type']}"))
async def waits(payload, ctx):
    note(payload, "before")
    await wait.for_(seconds=0.05)
    note(payload, "after")
    return "done"

async def cancel_hook(payload, ctx):
    note(payload, f"cancel-task:{ctx.run.id}")

@task(id="cancelable", on_cancel=cancel_hook)
async def cancelable(payload, ctx):
    import asyncio
    note(payload, "running")
    await asyncio.sleep(600)  # until canceled

@task(id="waits-sync", on_wait=lambda payload: note(payload, "wait"),
      on_resume=lambda payload: note(payload, "resume"))
def waits_sync(payload, ctx):
    wait.for_sync(seconds=0.05)
    return "done"
'''


@pytest.fixture(scope="module")
def hooked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    # one daemon for the module's tests (each run has its own log file): seconds, not a minute
    root = tmp_path_factory.mktemp("hooks")
    d = DaemonProcess(root / "home", env={"TRIGGER_LOCAL_HOME": str(root / "home")}).start()
    try:
        project = write_project(root / "project", TASKS)
        # global hooks in a file without tasks: a task process imports a trigger dir's init.py
        (project / "trigger" / "init.py").write_text(GLOBAL_HOOKS)
        d.register(project)
        yield d
    finally:
        d.close()


def _lines(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def _run(d: DaemonProcess, task: str, log: Path, **payload: Any) -> dict[str, Any]:
    return d.wait_status(d.trigger(task, {"log": str(log), **payload}))


def test_success_runs_every_hook_in_order_with_locals_and_spans(hooked: DaemonProcess,
                                                               tmp_path: Path) -> None:
    log = tmp_path / "ok.log"
    run = _run(hooked, "ok", log)
    assert (run["status"], run["output"]) == ("COMPLETED", {"db": "conn1"})
    assert _lines(log) == [
        "mw-global>1", "mw-task>", "start-global", "start-task1", "attempt-global1", "run",
        "success-global:{'db': 'conn1'}", "success-task:conn1:True",
        "complete-global:True", "complete-task:{'db': 'conn1'}", "mw-task<", "mw-global<1"]
    spans = hooked.api("GET", f"/api/v1/runs/{run['id']}/trace").json()["spans"]
    names = [s["message"] for s in spans]
    for kind in ("middleware", "init", "on_start", "on_start_attempt", "on_success",
                 "on_complete"):
        assert f"hook {kind}" in names, names


def test_failure_hooks_after_the_last_attempt_only(hooked: DaemonProcess, tmp_path: Path) -> None:
    log = tmp_path / "fails.log"
    run = _run(hooked, "fails", log)
    assert (run["status"], run["attemptCount"]) == ("FAILED", 2)
    lines = [x for x in _lines(log) if not x.startswith("mw-")]
    assert lines == [
        "start-global", "attempt-global1", "run1", "catch-task", "catch-global1",
        "attempt-global2", "run2", "catch-task", "catch-global2",
        "failure-global:boom2", "failure-task:boom2", "complete-global:False"]


def test_a_failing_on_start_fails_the_attempt_and_a_failing_on_success_does_not(
        hooked: DaemonProcess, tmp_path: Path) -> None:
    log = tmp_path / "start.log"
    run = _run(hooked, "start-fails", log)
    # attempt 1: on_start raised, the task never ran; attempt 2: no on_start, the run completes
    # although on_success raises
    assert (run["status"], run["output"], run["attemptCount"]) == ("COMPLETED", 2, 2)
    lines = [x for x in _lines(log) if x.startswith(("start", "run", "attempt"))]
    assert lines == ["start-global", "start1", "attempt-global2", "run2"]
    spans = hooked.api("GET", f"/api/v1/runs/{run['id']}/trace").json()["spans"]
    failed = [s for s in spans if s["message"] == "hook on_success" and s["level"] == "error"]
    assert failed and "on_success failed" in failed[0]["attributes"]["error"]


@pytest.mark.parametrize(("choice", "status", "attempts", "message"), [
    ("skip", "FAILED", 1, "changed by catch_error"),
    ("delay", "COMPLETED", 2, None),
    ("at", "COMPLETED", 2, None),
    ("retry-none", "FAILED", 1, "first attempt fails"),
    ("error-only", "FAILED", 1, "replaced"),
    ("abort", "FAILED", 1, "aborted"),
])
def test_catch_error_decides_the_retry(hooked: DaemonProcess, tmp_path: Path, choice: str,
                                       status: str, attempts: int, message: str | None) -> None:
    # the task's own policy waits 300 s between attempts: a second attempt within the test's
    # 30 s can only come from catch_error's delay
    log = tmp_path / f"{choice}.log"
    run = _run(hooked, "decides", log, choice=choice)
    assert (run["status"], run["attemptCount"]) == (status, attempts), run.get("error")
    if message is not None:
        assert message in json.dumps(run["error"])
    # the task's catch_error answers first, so the global one never runs (and an
    # AbortTaskRunError skips catch_error altogether)
    assert not [x for x in _lines(log) if x.startswith("catch-global")]


def test_a_failing_middleware_fails_the_attempt_without_failure_hooks(
        hooked: DaemonProcess, tmp_path: Path) -> None:
    log = tmp_path / "mw.log"
    run = _run(hooked, "mw-fails", log)
    assert (run["status"], run["output"], run["attemptCount"]) == ("COMPLETED", 2, 2)
    assert run["attempts"][0]["error"]["name"] == "TASK_MIDDLEWARE_ERROR"
    assert "failure-task" not in _lines(log)


def test_on_wait_and_on_resume_run_around_a_wait(hooked: DaemonProcess, tmp_path: Path) -> None:
    log = tmp_path / "wait.log"
    assert _run(hooked, "waits", log)["status"] == "COMPLETED"
    lines = [x for x in _lines(log) if not x.startswith(("mw-", "start", "attempt", "success",
                                                         "complete"))]
    assert lines == ["before", "wait:duration", "resume:duration", "after"]
    log2 = tmp_path / "wait-sync.log"
    assert _run(hooked, "waits-sync", log2)["status"] == "COMPLETED"
    assert [x for x in _lines(log2) if x in ("wait", "resume")] == ["wait", "resume"]


def test_on_cancel_runs_when_an_executing_run_is_canceled(hooked: DaemonProcess,
                                                           tmp_path: Path) -> None:
    log = tmp_path / "cancel.log"
    run_id = hooked.trigger("cancelable", {"log": str(log)})
    wait_for(lambda: "running" in _lines(log), 30, what="the task to run")
    r = hooked.api("POST", f"/api/v2/runs/{run_id}/cancel")
    assert r.status_code == 200, r.text
    wait_for(lambda: len([x for x in _lines(log) if x.startswith("cancel")]) == 2, 20,
             what="the on_cancel hooks")
    assert [x for x in _lines(log) if x.startswith("cancel")] == [
        "cancel-global", f"cancel-task:{run_id}"]
    assert hooked.run(run_id)["status"] == "CANCELED"


CK_TASKS = '''
import contextlib, os, sqlite3
from trigger_local import locals, task, wait

DB = locals.create("db")

def note(payload, line):
    with open(payload["log"], "a") as f:
        f.write(line + "\\n")

@contextlib.asynccontextmanager
async def database(payload):
    locals.set(DB, sqlite3.connect(payload["db"]))
    note(payload, "open")
    yield
    locals.get(DB).close()

# async hooks run on the task's event loop thread, as sqlite3 objects require
async def close(payload, wait):
    locals.get(DB).close()  # no open file may hold the run back from a clean restore
    locals.set(DB, None)
    note(payload, f"closed:{wait['type']}:{os.getpid()}")

async def reopen(payload, wait):
    locals.set(DB, sqlite3.connect(payload["db"]))
    note(payload, f"reopened:{wait['type']}:{os.getpid()}")

@task(id="ck-db", middleware=database, on_wait=close, on_resume=reopen, isolated=True)
async def ck_db(payload, ctx):
    locals.get(DB).execute("create table t (n integer)")
    await wait.for_token(payload["token"])
    db = locals.get(DB)
    db.execute("insert into t values (42)")
    db.commit()
    return db.execute("select n from t").fetchall()
'''


def test_on_wait_and_on_resume_around_a_criu_checkpoint(tmp_path: Path) -> None:
    require_criu()
    d = ck_daemon(tmp_path).start()
    try:
        d.register(write_project(tmp_path / "project", CK_TASKS))
        log, token = tmp_path / "ck.log", create_token(d)
        run_id = d.trigger("ck-db", {"log": str(log), "db": str(tmp_path / "run.db"),
                                     "token": token})
        wait_checkpointed(d, run_id)
        lines = _lines(log)
        assert [x.split(":")[0] for x in lines] == ["open", "closed"]  # dumped while waiting
        complete_token(d, token, {})
        run = d.wait_status(run_id)
        assert (run["status"], run["output"]) == ("COMPLETED", [[42]])
        lines = _lines(log)
        assert [x.rsplit(":", 1)[0] for x in lines] == ["open", "closed:token", "reopened:token"]
        assert lines[1].rsplit(":", 1)[1] == lines[2].rsplit(":", 1)[1]  # the restored process
    finally:
        d.close()
