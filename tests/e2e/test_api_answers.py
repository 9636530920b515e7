"""What the API says back, for the CLI to word: a cancel of a run that had already ended, and
each project's current version and tasks in the daemon's status."""

from __future__ import annotations

from pathlib import Path

from .conftest import DaemonProcess
from .test_projects import make_project


def test_cancel_says_whether_the_run_had_already_ended(daemon: DaemonProcess,
                                                       tmp_path: Path) -> None:
    d = daemon
    d.register(make_project(tmp_path / "a", "a"))
    done = d.trigger("hello", {})
    d.wait_status(done, "COMPLETED")
    r = d.api("POST", f"/api/v2/runs/{done}/cancel")
    assert r.status_code == 200  # Trigger.dev's answer, the official SDK reads only the id
    assert r.json() == {"id": done, "status": "COMPLETED", "alreadyFinal": True}
    assert d.run(done)["status"] == "COMPLETED"
    delayed = d.trigger("hello", {}, delay="1h")
    r = d.api("POST", f"/api/v2/runs/{delayed}/cancel")
    assert r.json() == {"id": delayed, "status": "CANCELED", "alreadyFinal": False}
    r = d.api("POST", f"/api/v2/runs/{delayed}/cancel")
    assert r.json() == {"id": delayed, "status": "CANCELED", "alreadyFinal": True}


def test_status_lists_each_projects_current_version_and_tasks(daemon: DaemonProcess,
                                                              tmp_path: Path) -> None:
    d = daemon
    a = d.register(make_project(tmp_path / "a", "a"))
    b = d.register(make_project(tmp_path / "b", "b"))
    status = d.api("GET", "/api/v1/local/status").json()
    projects = {p["ref"]: p for p in status["projects"]}
    assert projects["proj_a"]["currentVersion"] == a["id"]
    assert projects["proj_b"]["currentVersion"] == b["id"]
    assert sorted(projects["proj_a"]["taskIds"]) == ["hello", "only-a", "relay"]
    assert sorted(projects["proj_b"]["taskIds"]) == ["hello", "only-b", "relay"]
    assert projects["proj_a"]["tasks"] == 3  # the count, as before
    # the old top-level fields stay for one version: the newest project's
    assert status["current_version"] == b["id"] and "only-b" in status["tasks"]
    # a project key sees its own project only
    key = {p["ref"]: p["key"] for p in d.api("GET", "/api/v1/local/projects").json()["data"]}
    mine = d.api("GET", "/api/v1/local/status",
                 headers={"Authorization": f"Bearer {key['proj_a']}"}).json()
    assert [p["ref"] for p in mine["projects"]] == ["proj_a"]
    assert mine["current_version"] == a["id"] and "only-a" in mine["tasks"]
