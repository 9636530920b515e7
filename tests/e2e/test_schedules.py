"""Schedules through a real daemon: a declarative seconds-field cron fires runs that receive a
ScheduledPayload; an imperative schedule made with the SDK fires, deactivates and is deleted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from trigger_local.sdk.client import SyncApiClient
from trigger_local.sdk.schedules import ScheduleCalls

from .conftest import DaemonProcess, wait_for, write_project

TASKS = '''
from trigger_local import ScheduledPayload, schedules


@schedules.task(id="every-2s", cron="* * * * * */2")
async def every_2s(payload: ScheduledPayload, ctx):
    assert isinstance(payload, ScheduledPayload)
    return {"schedule": payload.schedule_id, "at": payload.timestamp.isoformat(),
            "upcoming": len(payload.upcoming), "external": payload.external_id,
            "type": payload.type}


@schedules.task(id="on-demand")
async def on_demand(payload: ScheduledPayload, ctx):
    return {"external": payload.external_id, "type": payload.type}
'''


@pytest.fixture
def scheduled(tmp_path: Path) -> Iterator[DaemonProcess]:
    daemon = DaemonProcess(tmp_path / "home").start()
    try:
        daemon.register(write_project(tmp_path / "project", TASKS))
        yield daemon
    finally:
        daemon.stop()
        daemon.close()


def completed(daemon: DaemonProcess, task: str, at_least: int) -> list[dict]:
    runs = daemon.api("GET", "/api/v1/runs", params={"filter[taskIdentifier]": task,
                                                     "filter[status]": "COMPLETED"}).json()["data"]
    return runs if len(runs) >= at_least else []


def test_declarative_seconds_schedule_fires_with_a_scheduled_payload(
        scheduled: DaemonProcess) -> None:
    listed = scheduled.api("GET", "/api/v1/schedules").json()["data"]
    decl = [s for s in listed if s["task"] == "every-2s"]
    assert len(decl) == 1 and decl[0]["type"] == "DECLARATIVE"
    runs = wait_for(lambda: completed(scheduled, "every-2s", 2), timeout=30,
                    what="two scheduled runs")
    outputs = [scheduled.run(r["id"])["output"] for r in runs[:2]]
    assert {o["schedule"] for o in outputs} == {decl[0]["id"]}
    assert all(o["upcoming"] == 5 and o["type"] == "DECLARATIVE" for o in outputs)
    assert outputs[0]["at"] != outputs[1]["at"]  # one run per tick
    # the run remembers its schedule: API, filter and `runs show`
    assert scheduled.run(runs[0]["id"])["schedule"]["id"] == decl[0]["id"]
    by_schedule = scheduled.api("GET", "/api/v1/runs",
                                params={"filter[schedule]": decl[0]["id"]}).json()["data"]
    assert {r["id"] for r in runs[:2]} <= {r["id"] for r in by_schedule}
    shown = _cli(scheduled, "runs", "show", runs[0]["id"])
    assert "Schedule" in shown.stdout and decl[0]["id"] in shown.stdout and "*/2" in shown.stdout


def test_imperative_schedule_from_the_sdk(scheduled: DaemonProcess) -> None:
    sdk = SyncApiClient(scheduled.url, scheduled.key)
    created = sdk.send(ScheduleCalls.create("on-demand", "* * * * * */2", external_id="user_7",
                                            deduplication_key="demo"))
    assert created["type"] == "IMPERATIVE" and created["externalId"] == "user_7"
    runs = wait_for(lambda: completed(scheduled, "on-demand", 1), timeout=30,
                    what="an imperative run")
    assert scheduled.run(runs[0]["id"])["output"] == {"external": "user_7", "type": "IMPERATIVE"}
    assert sdk.send(ScheduleCalls.deactivate(created["id"]))["active"] is False
    assert sdk.send(ScheduleCalls.delete(created["id"])) == {"id": created["id"]}
    sdk.close()


def _cli(daemon: DaemonProcess, *args: str,
         env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {**{k: v for k, v in os.environ.items() if k != "TRIGGER_LOCAL_PROJECT"},
            "TRIGGER_LOCAL_HOME": str(daemon.home), **(env or {})}
    return subprocess.run([sys.executable, "-m", "trigger_local", *args], capture_output=True,
                          text=True, env=full, timeout=60)


def test_cli_manages_an_imperative_schedule(scheduled: DaemonProcess) -> None:
    r = _cli(scheduled, "schedules", "create", "--task", "on-demand", "--cron", "0 9 * * 1-5",
             "--timezone", "Europe/Paris", "--external-id", "user_7", "--dedup-key", "k7", "--json")
    assert r.returncode == 0, r.stderr
    created = json.loads(r.stdout)
    assert (created["timezone"] == "Europe/Paris" and created["externalId"] == "user_7"
            and created["active"])
    again = json.loads(_cli(scheduled, "schedules", "create", "--task", "on-demand", "--cron",
                            "0 10 * * *", "--dedup-key", "k7", "--json").stdout)
    # upsert
    assert again["id"] == created["id"] and again["generator"]["expression"] == "0 10 * * *"
    assert _cli(scheduled, "schedules", "deactivate", created["id"]).returncode == 0
    listed = json.loads(_cli(scheduled, "schedules", "ls", "--json").stdout)
    items = listed["data"] if isinstance(listed, dict) else listed
    assert next(s for s in items if s["id"] == created["id"])["active"] is False
    bad = _cli(scheduled, "schedules", "create", "--task", "on-demand", "--cron", "61 * * * *")
    assert bad.returncode == 1 and "cron" in bad.stderr.lower()
    not_scheduled = _cli(scheduled, "schedules", "create", "--task", "hello-not-here", "--cron",
                         "0 * * * *")
    assert not_scheduled.returncode == 1
    assert _cli(scheduled, "schedules", "delete", created["id"]).returncode == 0
    assert _cli(scheduled, "schedules", "show", created["id"]).returncode == 1


def test_a_schedule_for_a_task_not_there_names_the_project_and_its_scheduled_tasks(
        scheduled: DaemonProcess) -> None:
    """It said "Task with identifier nosuch not found in project." and nothing else; the API's
    `error` stays Trigger.dev's sentence."""
    named = _cli(scheduled, "schedules", "create", "--task", "nosuch", "--cron", "0 * * * *",
                 env={"TRIGGER_LOCAL_PROJECT": "proj_test"})
    assert named.returncode == 1 and named.stderr.strip() == (
        "Error: Task with identifier nosuch not found in project proj_test. Tasks it can "
        "schedule: every-2s, on-demand."), named.stderr
    anywhere = _cli(scheduled, "schedules", "create", "--task", "nosuch", "--cron", "0 * * * *")
    assert anywhere.returncode == 1 and anywhere.stderr.strip() == (
        "Error: Task with identifier nosuch not found in any project. Scheduled tasks: "
        "proj_test: every-2s, on-demand."), anywhere.stderr
    r = scheduled.api("POST", "/api/v1/schedules", json={"task": "nosuch", "cron": "0 * * * *"})
    assert r.status_code == 422
    assert r.json()["error"] == "Task with identifier nosuch not found in project."
    listed = scheduled.api("GET", "/api/v1/schedules").json()["data"]
    assert [s["task"] for s in listed] == ["every-2s"]  # its declarative one alone
