"""Strict JSON at every edge (docs/configuration.md, "JSON"): NaN, Infinity and lone UTF-16
surrogates anywhere in a request body are a 400 naming the field, and nothing is stored; what a
task sends is written as JavaScript's JSON.stringify writes it; and an odd value already in an
older database never makes an answer fail."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import DaemonProcess, write_project

ODD_TASKS = '''
import math
from trigger_local import task, metadata, logger

@task(id="hello")
async def hello(payload, ctx):
    return {"ok": True}

@task(id="odd")
async def odd(payload, ctx):
    metadata.set("p", float("nan"))
    metadata.set("q", ["\\ud800", float("inf")])
    logger.info("odd values", ratio=float("nan"), text="\\udc00")
    return {"r": float("nan"), "s": "\\ud800", "i": -math.inf, "pair": "\\U0001F600"}
'''

WHY = "JSON has no NaN"


@pytest.fixture
def odd(daemon: DaemonProcess, tmp_path: Path) -> DaemonProcess:
    daemon.register(write_project(tmp_path / "project", ODD_TASKS))
    return daemon


def _refused(d: DaemonProcess, method: str, path: str, raw: str | bytes, field: str,
             content_type: str = "application/json") -> None:
    r = d.api(method, path, content=raw, headers={"content-type": content_type})
    assert r.status_code == 400, f"{method} {path} {raw!r} -> {r.status_code} {r.text[:300]}"
    message = r.json()["error"]
    assert field in message, f"{field!r} not named in {message!r}"


def _counts(d: DaemonProcess) -> tuple[int, int, int, int]:
    runs = d.api("GET", "/api/v1/runs", params={"page[size]": 100}).json()["data"]
    tokens = d.api("GET", "/api/v1/waitpoints/tokens", params={"page[size]": 100}).json()["data"]
    schedules = d.api("GET", "/api/v1/schedules").json()["data"]
    env = d.api("GET", "/api/v1/projects/proj_test/envvars/dev").json()
    return len(runs), len(tokens), len(schedules), len(env)


def test_nan_infinity_and_lone_surrogates_in_any_body_are_a_400_naming_the_field(
        odd: DaemonProcess) -> None:
    d = odd
    token = d.api("POST", "/api/v1/waitpoints/tokens", json={}).json()["id"]
    run_id = d.trigger("hello", {})
    batch = d.api("POST", "/api/v3/batches", json={"runCount": 1}).json()["id"]
    before = _counts(d)
    trigger = "/api/v1/tasks/hello/trigger"
    cases = [
        ("POST", trigger, '{"payload": NaN}', "payload"),
        ("POST", trigger, '{"payload": {"a": Infinity}}', "payload.a"),
        ("POST", trigger, '{"payload": [1, -Infinity]}', "payload[1]"),
        ("POST", trigger, '{"payload": "\\ud800"}', "payload"),
        ("POST", trigger, '{"payload": {"\\udc00": 1}}', "payload.\ufffd"),
        ("POST", trigger, '{"options": {"metadata": {"x": NaN}}}', "options.metadata.x"),
        ("POST", trigger, '{"options": {"tags": ["ok", "\\ud800"]}}', "options.tags[1]"),
        ("POST", trigger, '{"options": {"idempotencyKey": "\\ud800"}}', "options.idempotencyKey"),
        ("POST", trigger, '{"options": {"concurrencyKey": NaN}}', "options.concurrencyKey"),
        ("POST", trigger, '{"options": {"queue": {"name": "q", "concurrencyLimit": NaN}}}',
         "options.queue.concurrencyLimit"),
        # a payload packet (what the SDKs send) is held to the same rule
        ("POST", trigger, '{"payload": "{\\"a\\": NaN}", "options": {"payloadType": '
                          '"application/json"}}', "payload.a"),
        ("POST", "/api/v1/tasks/batch", '{"items": [{"task": "hello", "payload": NaN}]}',
         "items[0].payload"),
        ("POST", "/api/v1/tasks/batch",
         '{"items": [{"task": "hello", "options": {"tags": ["\\ud800"]}}]}',
         "items[0].options.tags[0]"),
        ("POST", "/api/v1/waitpoints/tokens", '{"tags": ["\\ud800"]}', "tags[0]"),
        ("POST", "/api/v1/waitpoints/tokens", '{"idempotencyKey": "\\ud800"}', "idempotencyKey"),
        ("POST", "/api/v1/waitpoints/tokens", '{"timeout": Infinity}', "timeout"),
        ("POST", f"/api/v1/waitpoints/tokens/{token}/complete", '{"data": NaN}', "data"),
        ("POST", f"/api/v1/waitpoints/tokens/{token}/complete", '{"data": {"a": -Infinity}}',
         "data.a"),
        ("POST", f"/api/v1/waitpoints/tokens/{token}/complete", '{"data": "\\ud800"}', "data"),
        ("POST", "/api/v1/projects/proj_test/envvars/dev", '{"name": "B", "value": "\\ud800"}',
         "value"),
        ("POST", "/api/v1/projects/proj_test/envvars/dev/import",
         '{"variables": {"A": "\\ud800"}}', "variables.A"),
        ("POST", "/api/v1/schedules", '{"task": "hello", "cron": "\\ud800"}', "cron"),
        ("POST", "/api/v1/schedules", '{"task": "hello", "cron": "* * * * *", '
                                      '"externalId": "\\ud800"}', "externalId"),
        ("POST", "/api/v1/schedules", '{"task": "hello", "cron": "* * * * *", '
                                      '"timezone": NaN}', "timezone"),
        ("PUT", f"/api/v1/runs/{run_id}/metadata", '{"metadata": {"a": NaN}}', "metadata.a"),
    ]
    for method, path, raw, field in cases:
        _refused(d, method, path, raw, field)
    _refused(d, "POST", f"/api/v3/batches/{batch}/items",
             '{"index": 0, "task": "hello", "payload": NaN}', "payload",
             content_type="application/x-ndjson")
    # a surrogate written as raw UTF-8 bytes is not UTF-8
    _refused(d, "POST", trigger, b'{"payload": "\xed\xa0\x80"}', "UTF-8")
    # the reason is said once, in words
    r = d.api("POST", trigger, content='{"payload": NaN}')
    assert WHY in r.json()["error"] and r.json().get("field") == "payload", r.text
    assert _counts(d) == before
    assert d.api("GET", f"/api/v1/waitpoints/tokens/{token}").json()["status"] == "WAITING"
    assert d.api("GET", f"/api/v1/runs/{run_id}/metadata").json()["metadata"] == {}
    # a valid surrogate pair is text, and goes through
    r = d.api("POST", trigger, content='{"payload": {"e": "\\ud83d\\ude00"}}')
    assert r.status_code == 200, r.text


def _cli(d: DaemonProcess, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"TRIGGER_LOCAL_HOME": str(d.home), "PATH": "/usr/bin:/bin", "COLUMNS": "200"}
    r = subprocess.run([sys.executable, "-m", "trigger_local", *args], capture_output=True,
                       text=True, env=env, timeout=60)
    assert r.returncode == 0 and "Traceback" not in r.stderr, (args, r.stdout, r.stderr[-2000:])
    return r


def test_a_task_sending_nan_and_lone_surrogates_completes_and_shows(odd: DaemonProcess) -> None:
    """The runtime writes what a task sends as JSON.stringify does: NaN/±Infinity → null, a lone
    surrogate → U+FFFD."""
    d = odd
    run_id = d.trigger("odd", {})
    run = d.wait_status(run_id)
    assert run["status"] == "COMPLETED", run
    assert run["output"] == {"r": None, "s": "\ufffd", "i": None, "pair": "\U0001F600"}
    assert run["metadata"] == {"p": None, "q": ["\ufffd", None]}
    assert d.api("GET", "/api/v1/runs").status_code == 200
    logs = d.api("GET", f"/api/v1/runs/{run_id}/logs")
    assert logs.status_code == 200 and "odd values" in logs.text
    shown = _cli(d, "runs", "show", run_id)
    assert run_id in shown.stdout
    _cli(d, "runs", "ls")
    _cli(d, "runs", "logs", run_id)


def test_odd_values_already_stored_never_break_an_answer(odd: DaemonProcess) -> None:
    """Rows written before the strict edge (or by hand): answers write them as JavaScript
    would, instead of failing with a 500."""
    d = odd
    run_id = d.wait_status(d.trigger("hello", {}))["id"]
    token = d.api("POST", "/api/v1/waitpoints/tokens", json={"tags": ["t"]}).json()["id"]
    d.stop()
    with sqlite3.connect(d.home / "trigger-local.db") as db:
        db.execute("UPDATE runs SET output = ?, metadata = ?, tags = ?, payload = ? WHERE id = ?",
                   ('{"ratio": NaN}', '{"x": NaN, "y": Infinity}', '["\\ud800"]', 'NaN', run_id))
        db.execute("UPDATE waitpoints SET tags = ? WHERE id = ?", ('["\\ud800", "t"]', token))
    d.start()
    listed = d.api("GET", "/api/v1/runs")
    assert listed.status_code == 200, listed.text
    assert listed.json()["data"][0]["tags"] == ["\ufffd"]
    shown = d.api("GET", f"/api/v3/runs/{run_id}")
    assert shown.status_code == 200, shown.text
    assert shown.json()["output"] == {"ratio": None}
    assert shown.json()["metadata"] == {"x": None, "y": None}
    tokens = d.api("GET", "/api/v1/waitpoints/tokens")
    assert tokens.status_code == 200, tokens.text
    assert sorted(tokens.json()["data"][0]["tags"]) == ["t", "\ufffd"]
    assert d.api("GET", f"/api/v1/waitpoints/tokens/{token}").status_code == 200
    _cli(d, "runs", "ls")
    _cli(d, "runs", "show", run_id)
    _cli(d, "tokens", "ls")
