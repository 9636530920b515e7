"""Defects an outside look found at the routes, against a real daemon: list filters that are not
a date or a ref are a 400 naming the filter (they matched nothing or everything, silently); a
project key registering a directory of another project is a 403, not a 409 (nor a success)."""

from __future__ import annotations

from pathlib import Path

from trigger_local.projects import PROJECT_HEADER
from trigger_local.tokens import project_key

from .conftest import DaemonProcess, write_project
from .test_cli_messages import cli

RUNS = "/api/v1/runs"
TOKENS = "/api/v1/waitpoints/tokens"


def test_a_created_at_that_is_not_a_finite_instant_is_a_400_naming_it(
        daemon: DaemonProcess) -> None:
    for path in (RUNS, TOKENS):
        for name, value in (("filter[createdAt][to]", "nan"), ("filter[createdAt][to]", "inf"),
                            ("filter[createdAt][from]", "-1"),
                            ("filter[createdAt][from]", "-infinity")):
            r = daemon.api("GET", path, params={name: value})
            assert r.status_code == 400, (path, name, value, r.text)
            assert name in r.json()["error"], r.text
        for good in ("0", "1764000000000", "2026-11-30T10:00:00Z"):
            r = daemon.api("GET", path, params={"filter[createdAt][from]": good})
            assert r.status_code == 200, (path, good, r.text)


def test_a_malformed_project_ref_filter_is_a_400_naming_it(daemon: DaemonProcess) -> None:
    r = daemon.api("GET", RUNS, params={"filter[project]": "bad ref"})
    assert r.status_code == 400, r.text
    assert "filter[project]" in r.json()["error"] and "'bad ref'" in r.json()["error"], r.text
    # a well-formed ref the daemon does not serve still lists nothing
    r = daemon.api("GET", RUNS, params={"filter[project]": "proj_elsewhere"})
    assert r.status_code == 200 and r.json()["data"] == [], r.text
    done = cli(daemon, "runs", "ls", "--project", "bad ref")
    assert done.returncode == 1, done
    assert "filter[project]" in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_a_project_key_cannot_register_a_directory_of_another_project(
        daemon: DaemonProcess, tmp_path: Path) -> None:
    mine = write_project(tmp_path / "mine")
    (mine / "trigger.toml").write_text('project = "proj_mine"\ndirs = ["trigger"]\n')
    theirs = write_project(tmp_path / "theirs")  # trigger.toml: project = "proj_test"
    daemon.register(mine)
    key = {"Authorization": f"Bearer {project_key(daemon.key, 'proj_mine')}"}
    r = daemon.api("POST", "/api/v1/local/versions", headers=key,
                   json={"projectDir": str(theirs), "dirs": ["trigger"]})
    assert r.status_code == 403, r.text
    assert r.json()["code"] == "forbidden", r.text
    assert "proj_mine" in r.json()["error"] and "proj_test" in r.json()["error"], r.text
    assert "same project ref" not in r.json()["error"], r.text
    projects = {p["ref"] for p in daemon.api("GET", "/api/v1/local/projects").json()["data"]}
    assert projects == {"proj_mine"}
    # its own directory, and one whose config names no project (the key's ref replaces the
    # ref derived from the directory's name), it registers
    plain = write_project(tmp_path / "plain")
    (plain / "trigger.toml").write_text('dirs = ["trigger"]\n')
    for folder in (mine, plain):
        r = daemon.api("POST", "/api/v1/local/versions", headers=key,
                       json={"projectDir": str(folder), "dirs": ["trigger"]})
        assert r.status_code == 200, r.text
    # review rv9e: a config naming the ref its directory's name derives — as `init` writes it
    # — names a project all the same (it registered under the key's project)
    inited = write_project(tmp_path / "inited")
    (inited / "trigger.toml").write_text('project = "proj_inited"\ndirs = ["trigger"]\n')
    r = daemon.api("POST", "/api/v1/local/versions", headers=key,
                   json={"projectDir": str(inited), "dirs": ["trigger"]})
    assert r.status_code == 403 and "proj_inited" in r.json()["error"], r.text


def test_an_escaped_slash_in_an_id_reaches_its_route(ready: DaemonProcess) -> None:
    """`runs show ../../etc` asks for `/api/v3/runs/..%2F..%2Fetc`: the run route answers (its
    "Run not found"), not "Resource not found" from no route; names with "/" in `{…:path}`
    parameters (packets, task ids) keep their slashes."""
    for args in (("runs", "show", "../../etc"), ("runs", "cancel", "a/b"),
                 ("tokens", "show", "../x")):
        done = cli(ready, *args)
        assert done.returncode == 1, done
        assert "not found" in done.stderr.lower() and "Resource not found" not in done.stderr, \
            (args, done.stderr)
    r = ready.api("GET", "/api/v3/runs/..%2F..%2Fetc")
    assert r.status_code == 404, r.text
    assert r.json()["error"] == "Run not found" and r.json()["run_id"] == "../../etc", r.text
    r = ready.api("GET", "/api/v1/waitpoints/tokens/a%2Fb")
    assert r.status_code == 404 and r.json()["error"] != "Resource not found", r.text
    r = ready.api("POST", "/api/v1/tasks/no%2Fsuch/trigger", json={})
    assert r.status_code in (200, 404), r.text
    for name in ("dir/name.json", "dir%2Fname.json"):  # a `{name:path}` parameter
        r = ready.api("PUT", f"/api/v2/packets/{name}")
        assert r.status_code == 200 and r.json()["storagePath"] == "dir/name.json", r.text


WHICH = '''
import os
from trigger_local import task

@task(id="which")
async def which(payload, ctx):
    return os.environ.get("WHICH")
'''


PARENT = WHICH + '''
from trigger_local import tasks

@task(id="parent")
async def parent(payload, ctx):
    waited = await tasks.trigger_and_wait("which")
    batch = await tasks.batch_trigger_and_wait("which", [1, 2])
    loose = await tasks.trigger("which")
    return {"waited": waited.unwrap(), "batch": [r.unwrap() for r in batch], "loose": loose.id}
'''


def _two_versions(daemon: DaemonProcess, tmp_path: Path, source: str = WHICH) -> list[str]:
    """The ids of two versions of one project, `which` answering "one", then "two"."""
    root = write_project(tmp_path / "p", source)
    versions = []
    for which in ("one", "two"):
        r = daemon.api("POST", "/api/v1/local/versions",
                       json={"projectDir": str(root), "dirs": ["trigger"],
                             "env": {"WHICH": which}})
        assert r.status_code == 200, r.text
        versions.append(r.json()["id"])
    return versions


def test_a_run_locked_to_a_version_runs_on_it(daemon: DaemonProcess, tmp_path: Path) -> None:
    """`options.lockToVersion` names a version of the project (its id): the run runs on that
    version (here: its env), not the current one; an unknown id, one without the task, and
    one too long to be an id are a 4xx naming it."""
    versions = _two_versions(daemon, tmp_path)
    locked = daemon.trigger("which", lockToVersion=versions[0])
    current = daemon.trigger("which")
    for run_id, expected in ((locked, "one"), (current, "two")):
        run = daemon.wait_status(run_id, timeout=90)
        assert run["status"] == "COMPLETED" and run["output"] == expected, run
    unknown = daemon.api("POST", "/api/v1/tasks/which/trigger",
                         json={"options": {"lockToVersion": "version_nope"}})
    assert unknown.status_code == 422, unknown.text
    assert "'version_nope'" in unknown.json()["error"] and "lockToVersion" in \
        unknown.json()["error"], unknown.text
    long = daemon.api("POST", "/api/v1/tasks/which/trigger",
                      json={"options": {"lockToVersion": "v" * 65}})
    assert long.status_code == 400 and "options.lockToVersion must be 1 to 64" in \
        long.json()["error"], long.text
    other = write_project(tmp_path / "other")
    (other / "trigger.toml").write_text('project = "proj_other"\ndirs = ["trigger"]\n')
    theirs = daemon.register(other)["id"]
    r = daemon.api("POST", "/api/v1/tasks/which/trigger", headers={PROJECT_HEADER: "proj_test"},
                   json={"options": {"lockToVersion": theirs}})
    assert r.status_code == 422 and "no version of project proj_test" in r.json()["error"], \
        r.text
    daemon.register(write_project(tmp_path / "again"))  # proj_test's current: `hello`, no `which`
    r = daemon.api("POST", "/api/v1/tasks/hello/trigger", headers={PROJECT_HEADER: "proj_test"},
                   json={"options": {"lockToVersion": versions[0]}})
    assert r.status_code == 422 and f"Version {versions[0]}" in r.json()["error"] \
        and "no task 'hello'" in r.json()["error"], r.text


def test_a_locked_run_runs_on_its_version_beside_a_warm_current_one(
        daemon: DaemonProcess, tmp_path: Path) -> None:
    """Review rv9e: a run locked to an older version started at once in the current version's
    warm process (its record said the old version, its code and env were the new one's); and a
    locked trigger of a task the current version no longer has was refused (404)."""
    versions = _two_versions(daemon, tmp_path)
    warm = daemon.trigger("which")  # the current version's process is warm after it
    assert daemon.wait_status(warm, timeout=90)["output"] == "two"
    for _ in range(3):
        locked = daemon.trigger("which", lockToVersion=versions[0])
        run = daemon.wait_status(locked, timeout=90)
        assert run["status"] == "COMPLETED" and run["output"] == "one", run
    daemon.register(write_project(tmp_path / "again"))  # the current one: `hello`, no `which`
    r = daemon.api("POST", "/api/v1/tasks/which/trigger", headers={PROJECT_HEADER: "proj_test"},
                   json={"options": {"lockToVersion": versions[0]}})
    assert r.status_code == 200, r.text
    run = daemon.wait_status(r.json()["id"], timeout=90)
    assert run["status"] == "COMPLETED" and run["output"] == "one", run


def test_the_children_a_locked_run_waits_for_run_on_its_version(
        daemon: DaemonProcess, tmp_path: Path) -> None:
    """As Trigger.dev's SDK does, trigger_and_wait and batch_trigger_and_wait from inside a run
    lock the child to the run's version (they ran on the current one: a run locked to an old
    version got the new version's results); a child nobody waits for runs on the current one."""
    versions = _two_versions(daemon, tmp_path, PARENT)
    run = daemon.wait_status(daemon.trigger("parent", lockToVersion=versions[0]), timeout=120)
    assert run["status"] == "COMPLETED", run
    assert run["output"]["waited"] == "one" and run["output"]["batch"] == ["one", "one"], run
    loose = daemon.wait_status(run["output"]["loose"], timeout=90)
    assert loose["output"] == "two", loose
    current = daemon.wait_status(daemon.trigger("parent"), timeout=120)
    assert current["output"]["waited"] == "two" and current["output"]["batch"] == ["two", "two"]
