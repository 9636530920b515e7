"""`options.parentRunId` must name a run of the new run's own project: another project's run
(which a direct GET shows as 404 to this key) or a made-up id is 404 "Parent run … not found",
so a project key can never read another project's run through `relatedRuns`."""

from __future__ import annotations

from pathlib import Path

from .conftest import DaemonProcess, wait_for
from .test_project_confinement import Keys, _project


def test_a_parent_of_another_project_or_none_is_not_found(daemon: DaemonProcess,
                                                          tmp_path: Path) -> None:
    daemon.register(_project(tmp_path / "a", "a"))
    daemon.register(_project(tmp_path / "b", "b"))
    keys = Keys(daemon)
    theirs = keys.call("proj_b", "POST", "/api/v1/tasks/env-b/trigger", json={})
    assert theirs.status_code == 200, theirs.text
    their_run = theirs.json()["id"]
    assert keys.call("proj_a", "GET", f"/api/v3/runs/{their_run}").status_code == 404
    for parent in (their_run, "run_madeup0000000000000"):
        r = keys.call("proj_a", "POST", "/api/v1/tasks/env-a/trigger",
                      json={"options": {"parentRunId": parent}})
        assert r.status_code == 404, r.text
        assert r.json()["error"].startswith(f"Parent run {parent} not found"), r.text
        batch = keys.call("proj_a", "POST", "/api/v1/tasks/batch",
                          json={"items": [{"task": "env-a",
                                           "options": {"parentRunId": parent}}]})
        assert batch.status_code == 404, batch.text
    # nothing of project b reached project a's list
    listed = keys.call("proj_a", "GET", "/api/v1/runs").json()["data"]
    assert listed == [], listed
    # a parent of its own project is taken, and shown
    own = keys.call("proj_a", "POST", "/api/v1/tasks/env-a/trigger", json={}).json()["id"]
    batch = keys.call("proj_a", "POST", "/api/v1/tasks/batch",
                      json={"items": [{"task": "env-a", "options": {"parentRunId": own}}]})
    assert batch.status_code == 200, batch.text
    child = keys.call("proj_a", "POST", "/api/v1/tasks/env-a/trigger",
                      json={"options": {"parentRunId": own}})
    assert child.status_code == 200, child.text
    shown = wait_for(lambda: keys.call("proj_a", "GET",
                                       f"/api/v3/runs/{child.json()['id']}").json(), 30)
    assert shown["relatedRuns"]["parent"]["id"] == own, shown
    # the daemon's key, naming no project: the child goes to its parent's project
    r = daemon.api("POST", "/api/v1/tasks/env-b/trigger",
                   json={"options": {"parentRunId": their_run}})
    assert r.status_code == 200, r.text


def test_a_batch_parent_of_another_project_or_none_is_not_found(daemon: DaemonProcess,
                                                                tmp_path: Path) -> None:
    """Two-phase `POST /api/v3/batches` and the batch-level `parentRunId` of
    `/api/v1/tasks/batch` follow the same rule: no batch (nor waitpoint) hangs on another
    project's run."""
    daemon.register(_project(tmp_path / "a", "a"))
    daemon.register(_project(tmp_path / "b", "b"))
    keys = Keys(daemon)
    their_run = keys.call("proj_b", "POST", "/api/v1/tasks/env-b/trigger", json={}).json()["id"]
    own = keys.call("proj_a", "POST", "/api/v1/tasks/env-a/trigger", json={}).json()["id"]
    for parent in (their_run, "run_madeup0000000000000"):
        r = keys.call("proj_a", "POST", "/api/v3/batches",
                      json={"runCount": 1, "parentRunId": parent,
                            "resumeParentOnCompletion": True})
        assert r.status_code == 404, r.text
        assert r.json()["error"].startswith(f"Parent run {parent} not found"), r.text
        # items naming their own project's parent do not carry a foreign batch parent through
        legacy = keys.call("proj_a", "POST", "/api/v1/tasks/batch",
                           json={"parentRunId": parent, "resumeParentOnCompletion": True,
                                 "items": [{"task": "env-a",
                                            "options": {"parentRunId": own}}]})
        assert legacy.status_code == 404, legacy.text
    r = keys.call("proj_a", "POST", "/api/v3/batches", json={"runCount": 1, "parentRunId": own})
    assert r.status_code == 202, r.text
    # the daemon's key, naming no project, may hang a batch on any run
    r = daemon.api("POST", "/api/v3/batches", json={"runCount": 1, "parentRunId": their_run})
    assert r.status_code == 202, r.text
