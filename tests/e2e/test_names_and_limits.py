"""Out-of-range names and numbers (docs/configuration.md, "Limits and their errors"): control
characters and overlong names are a 400 naming the field, a trigger's queue concurrency limit is
checked and applied, and a wait past the longest one fails the attempt with words."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from .conftest import DaemonProcess, write_project

TASKS = '''
from trigger_local import task, wait

@task(id="hello")
async def hello(payload, ctx):
    return {"ok": True}

@task(id="long-wait")
async def long_wait(payload, ctx):
    await wait.for_(seconds=float(payload["seconds"]))
    return {"waited": True}
'''


@pytest.fixture
def live(daemon: DaemonProcess, tmp_path: Path) -> DaemonProcess:
    daemon.register(write_project(tmp_path / "project", TASKS))
    return daemon


def _refused(r: Any, field: str) -> None:
    assert r.status_code == 400, f"{r.request.url} -> {r.status_code} {r.text[:300]}"
    assert field in r.json()["error"], r.json()


def _state(d: DaemonProcess) -> tuple[int, int, list[str]]:
    runs = d.api("GET", "/api/v1/runs", params={"page[size]": 100}).json()["data"]
    tokens = d.api("GET", "/api/v1/waitpoints/tokens", params={"page[size]": 100}).json()["data"]
    queues = d.api("GET", "/api/v1/queues", params={"perPage": 100}).json()["data"]
    return len(runs), len(tokens), sorted(q["name"] for q in queues)


def test_control_characters_and_overlong_names_are_a_400(live: DaemonProcess) -> None:
    d = live
    before = _state(d)
    trigger = "/api/v1/tasks/hello/trigger"
    for bad in ("a\u0000b", "line\nbreak", "tab\tx", "esc\u001b[31m", "del\u007f"):
        for options, field in (({"tags": ["ok", bad]}, "tags"), ({"tags": bad}, "tags"),
                               ({"idempotencyKey": bad}, "options.idempotencyKey"),
                               ({"concurrencyKey": bad}, "options.concurrencyKey"),
                               ({"queue": {"name": bad}}, "options.queue.name")):
            _refused(d.api("POST", trigger, json={"options": options}), field)
            _refused(d.api("POST", "/api/v1/tasks/batch",
                           json={"items": [{"task": "hello", "options": options}]}), field)
        _refused(d.api("POST", "/api/v1/waitpoints/tokens", json={"tags": [bad]}), "tags")
        _refused(d.api("POST", "/api/v1/waitpoints/tokens", json={"idempotencyKey": bad}),
                 "idempotencyKey")
    for options, field in (({"queue": {"name": "q" * 100_000}}, "options.queue.name"),
                           ({"queue": "q" * 257}, "options.queue.name"),
                           ({"concurrencyKey": "k" * 257}, "options.concurrencyKey"),
                           ({"idempotencyKey": "k" * 2049}, "options.idempotencyKey")):
        _refused(d.api("POST", trigger, json={"options": options}), field)
    _refused(d.api("POST", "/api/v1/waitpoints/tokens", json={"tags": ["t" * 129]}), "tags")
    assert _state(d) == before
    # the longest names are fine
    run = d.api("POST", trigger, json={"options": {"queue": {"name": "q" * 256},
                                                   "concurrencyKey": "k" * 256}})
    assert run.status_code == 200, run.text


def test_tags_as_one_string_is_one_tag(live: DaemonProcess) -> None:
    """Trigger.dev's `tags` is a string or a list of strings (TRIGGER_API.md)."""
    d = live
    run_id = d.trigger("hello", {}, tags="solo")
    assert d.run(run_id)["tags"] == ["solo"]
    token = d.api("POST", "/api/v1/waitpoints/tokens", json={"tags": "solo"}).json()["id"]
    assert d.api("GET", f"/api/v1/waitpoints/tokens/{token}").json()["tags"] == ["solo"]


def test_a_trigger_queue_concurrency_limit_is_checked_and_applied(live: DaemonProcess) -> None:
    d = live
    trigger = "/api/v1/tasks/hello/trigger"
    before = _state(d)
    for value in (2**64, -1, 1.5, "3", True, 100_001):
        _refused(d.api("POST", trigger, json={"options": {"queue": {"name": "limited",
                                                                    "concurrencyLimit": value}}}),
                 "options.queue.concurrencyLimit")
    _refused(d.api("POST", trigger, content='{"options": {"queue": {"name": "limited", '
                                            '"concurrencyLimit": NaN}}}'),
             "options.queue.concurrencyLimit")
    assert _state(d) == before
    r = d.api("POST", trigger, json={"options": {"queue": {"name": "limited",
                                                           "concurrencyLimit": 2}}})
    assert r.status_code == 200, r.text
    queue = d.api("GET", "/api/v1/queues/limited", params={"type": "custom"}).json()
    assert queue["concurrencyLimit"] == 2, queue
    # a later trigger's limit replaces it; one without a limit leaves it
    d.api("POST", trigger, json={"options": {"queue": {"name": "limited", "concurrencyLimit": 5}}})
    d.api("POST", trigger, json={"options": {"queue": {"name": "limited"}}})
    queue = d.api("GET", "/api/v1/queues/limited", params={"type": "custom"}).json()
    assert queue["concurrencyLimit"] == 5, queue
    # and on a task's own queue
    d.api("POST", trigger, json={"options": {"queue": {"concurrencyLimit": 1}}})
    queue = d.api("GET", "/api/v1/queues/hello", params={"type": "task"}).json()
    assert queue["concurrencyLimit"] == 1, queue


@pytest.mark.parametrize(("seconds", "words"), [("1e308", "10 years"), ("nan", "finite number"),
                                                 ("inf", "finite number")])
def test_a_wait_past_the_longest_or_not_a_number_fails_with_words(
        live: DaemonProcess, seconds: str, words: str) -> None:
    d = live
    run = d.wait_status(d.trigger("long-wait", {"seconds": seconds}, maxAttempts=1))
    assert run["status"] == "FAILED", run
    message = run["error"]["message"]
    assert "ValueError" in run["error"].get("name", "") + message or "wait.for_" in message, run
    assert words in message and "OverflowError" not in message, message


def test_schedule_and_env_var_names_are_checked_too(live: DaemonProcess) -> None:
    d = live
    before = d.api("GET", "/api/v1/schedules").json()["data"]
    for field, value in (("externalId", "a\u0000b"), ("deduplicationKey", "x\ny"),
                         ("timezone", "UTC\u0000"), ("deduplicationKey", "k" * 257)):
        _refused(d.api("POST", "/api/v1/schedules",
                       json={"task": "hello", "cron": "0 * * * *", field: value}), field)
    assert d.api("GET", "/api/v1/schedules").json()["data"] == before
    r = d.api("POST", "/api/v1/projects/proj_test/envvars/dev",
              json={"name": "N" * 257, "value": "v"})
    assert r.status_code == 400 and "at most 256" in r.json()["error"], r.text
    assert d.api("GET", "/api/v1/projects/proj_test/envvars/dev").json() == []
