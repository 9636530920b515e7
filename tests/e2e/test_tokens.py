"""Waitpoint tokens end to end: a real daemon, real task processes, the real CLI and plain HTTP.

Every way of completing a token (Python app code, the CLI with inline/@file/stdin data, the
API, the unauthenticated callback URL) must make the waiting run finish with that data."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import httpx
import pytest

from .conftest import DaemonProcess, write_project

TOKEN_TASKS = '''
from trigger_local import task, wait

@task(id="await-token")
async def await_token(payload, ctx):
    result = await wait.for_token(payload["token"])
    return {"ok": result.ok, "output": result.output, "error": result.error}

@task(id="unwrap-token")
async def unwrap_token(payload, ctx):
    try:
        return {"value": (await wait.for_token(payload["token"])).unwrap()}
    except Exception as exc:  # the timeout must arrive as an exception the task can catch
        return {"raised": type(exc).__name__, "message": str(exc)}
'''


@pytest.fixture
def tok(daemon: DaemonProcess, tmp_path: Path) -> DaemonProcess:
    daemon.register(write_project(tmp_path / "tokproj", TOKEN_TASKS))
    return daemon


def cli(d: DaemonProcess, *args: str, stdin: str | None = None,
        code: int = 0) -> subprocess.CompletedProcess[str]:
    """The real `trigger-local` CLI, finding the test daemon through TRIGGER_LOCAL_HOME; it
    must exit with `code`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIGGER_")}
    env["TRIGGER_LOCAL_HOME"] = str(d.home)
    proc = subprocess.run([sys.executable, "-m", "trigger_local", *args], input=stdin,
                          capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == code, (proc.stdout, proc.stderr)
    return proc


def new_token(d: DaemonProcess, **body: Any) -> dict[str, Any]:
    r = d.api("POST", "/api/v1/waitpoints/tokens", json=body)
    assert r.status_code == 200, r.text
    return r.json()


def waiting_on(d: DaemonProcess, token_id: str, task: str = "await-token") -> str:
    run_id = d.trigger(task, {"token": token_id})
    d.wait_status(run_id, "WAITING")
    return run_id


def finished_output(d: DaemonProcess, run_id: str) -> Any:
    run = d.wait_status(run_id)
    assert run["status"] == "COMPLETED", run
    return run["output"]


def test_python_app_code_completes_a_token(tok: DaemonProcess, tmp_path: Path) -> None:
    token = new_token(tok)
    run_id = waiting_on(tok, token["id"])
    script = tmp_path / "approve.py"
    script.write_text(textwrap.dedent(f'''
        import asyncio
        from trigger_local import wait
        asyncio.run(wait.complete_token("{token['id']}", {{"approved": True, "by": "ada"}}))
    '''))
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("TRIGGER_")},
           "TRIGGER_LOCAL_HOME": str(tok.home)}
    subprocess.run([sys.executable, str(script)], env=env, check=True, timeout=60)
    assert finished_output(tok, run_id) == {"ok": True, "output": {"approved": True, "by": "ada"},
                                            "error": None}


@pytest.mark.parametrize("form", ["inline", "file", "stdin"])
def test_cli_completes_a_token(tok: DaemonProcess, tmp_path: Path, form: str) -> None:
    token = new_token(tok)
    run_id = waiting_on(tok, token["id"])
    listed = cli(tok, "tokens", "ls", "--status", "WAITING").stdout
    # RUNS
    assert next(line for line in listed.splitlines() if token["id"] in line).split()[2] == run_id
    data = {"form": form, "n": [1, 2]}
    if form == "inline":
        cli(tok, "tokens", "complete", token["id"], "--data", json.dumps(data))
    elif form == "file":
        (tmp_path / "data.json").write_text(json.dumps(data))
        cli(tok, "tokens", "complete", token["id"], "--data", f"@{tmp_path / 'data.json'}")
    else:
        cli(tok, "tokens", "complete", token["id"], "--data", "-", stdin=json.dumps(data))
    assert finished_output(tok, run_id)["output"] == data


def test_api_complete_twice_keeps_the_first_output(tok: DaemonProcess) -> None:
    token = new_token(tok)
    run_id = waiting_on(tok, token["id"])
    path = f"/api/v1/waitpoints/tokens/{token['id']}/complete"
    assert tok.api("POST", path, json={"data": {"first": 1}}).json() == {"success": True,
                                                                         "changed": True}
    assert tok.api("POST", path, json={"data": {"second": 2}}).json() == {"success": True,
                                                                          "changed": False}
    assert finished_output(tok, run_id)["output"] == {"first": 1}
    shown = tok.api("GET", f"/api/v1/waitpoints/tokens/{token['id']}").json()
    assert shown["status"] == "COMPLETED" and json.loads(shown["output"]) == {"json": {"first": 1}}


def test_callback_url_whole_body_and_wrong_hmac(tok: DaemonProcess) -> None:
    token = new_token(tok)
    run_id = waiting_on(tok, token["id"])
    forged = token["url"].rsplit("/", 1)[0] + "/" + "0" * 64
    bad = httpx.post(forged, json={"evil": True})  # no Authorization header at all
    assert bad.status_code == 401 and "hash" in bad.json()["error"]
    assert tok.run(run_id)["status"] == "WAITING"
    assert tok.api("GET", f"/api/v1/waitpoints/tokens/{token['id']}").json()["status"] == "WAITING"
    good = httpx.post(token["url"], json={"decision": "yes", "items": [1, 2, 3]})
    assert good.status_code == 200 and good.json() == {"success": True}
    assert finished_output(tok, run_id)["output"] == {"decision": "yes", "items": [1, 2, 3]}


def test_timeout_by_clock_gives_the_run_an_error_result(tok: DaemonProcess) -> None:
    token = new_token(tok, timeout="1s")
    # not waiting_on: under load the second may pass before the run is seen WAITING (or before
    # it waits at all: its wait then ends at once, timed out, the same way)
    run_id = tok.trigger("unwrap-token", {"token": token["id"]})
    out = finished_output(tok, run_id)
    assert (out["raised"] == "WaitTimeoutError"
            and out["message"].startswith("Waitpoint timed out at "))
    shown = tok.api("GET", f"/api/v1/waitpoints/tokens/{token['id']}").json()
    assert shown["status"] == "TIMED_OUT" and shown["outputIsError"] is True
    assert json.loads(shown["output"]) == {"code": "TRIGGER_WAITPOINT_TIMEOUT",
                                           "message": out["message"]}


def test_cli_forced_timeout_and_late_completion(tok: DaemonProcess) -> None:
    token = new_token(tok, timeout="1h")
    run_id = waiting_on(tok, token["id"])
    cli(tok, "tokens", "timeout", token["id"])
    out = finished_output(tok, run_id)
    assert out["ok"] is False and out["output"] is None
    assert (out["error"]["code"] == "TRIGGER_WAITPOINT_TIMEOUT"
            and out["error"]["status"] == "TIMED_OUT")
    # completing a timed-out token changes nothing: the CLI says so and exits 1
    late = cli(tok, "tokens", "complete", token["id"], "--data", '{"late": true}', code=1)
    assert "timed out at" in late.stderr and "nothing was completed" in late.stderr
    shown = json.loads(cli(tok, "tokens", "show", token["id"], "--json").stdout)
    assert (shown["status"] == "TIMED_OUT"
            and json.loads(shown["output"])["code"] == "TRIGGER_WAITPOINT_TIMEOUT")


def test_already_completed_token_continues_at_once(tok: DaemonProcess) -> None:
    created = cli(tok, "tokens", "create", "--tag", "pre", "--json").stdout
    token = json.loads(created)
    cli(tok, "tokens", "complete", token["id"], "--data", '"done before"')
    run_id = tok.trigger("await-token", {"token": token["id"]})
    assert finished_output(tok, run_id)["output"] == "done before"
    events = tok.api("GET", "/api/v1/local/events",
                     params={"run_id": run_id, "limit": 100}).json()["data"]
    assert "run.waiting" not in [e["type"] for e in events]  # it never waited
    shown = cli(tok, "tokens", "show", token["id"]).stdout
    assert "COMPLETED" in shown and "done before" in shown


def test_cli_ls_filters_and_pages(tok: DaemonProcess) -> None:
    ids = [json.loads(cli(tok, "tokens", "create", "--tag", f"group:{i % 2}",
                          "--json").stdout)["id"]
           for i in range(5)]
    keyed = new_token(tok, idempotencyKey="approval-42", tags=["group:1"])
    cli(tok, "tokens", "complete", ids[0], "--data", "{}")

    def ls(*args: str) -> dict[str, Any]:
        return json.loads(cli(tok, "tokens", "ls", "--json", *args).stdout)

    assert [t["id"] for t in ls("--status", "COMPLETED")["data"]] == [ids[0]]
    assert {t["id"] for t in ls("--tag", "group:0")["data"]} == {ids[0], ids[2], ids[4]}
    assert [t["id"] for t in ls("--idempotency-key", "approval-42")["data"]] == [keyed["id"]]
    seen: list[str] = []
    page = ls("--limit", "2")
    while True:
        seen += [t["id"] for t in page["data"]]
        if not page["pagination"].get("next"):
            break
        page = ls("--limit", "2", "--after", page["pagination"]["next"])
    assert seen == [keyed["id"], *reversed(ids)]  # newest first, each exactly once
    listed = cli(tok, "tokens", "ls", "--limit", "2")
    table = listed.stdout + listed.stderr
    assert keyed["id"] in table and "--after" in table
