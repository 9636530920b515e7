"""One daemon, several projects (issue #11), end to end: two projects in two directories, each
with a `trigger-local dev` (a real subprocess) on one daemon. Both have a task `hello`; each
returns its own project's letter, so every assertion on an output says which project ran."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from .conftest import DaemonProcess, wait_for
from .test_cli_sdk_dev import _Reader

TASKS = '''
from trigger_local import task, tasks, runs

@task(id="hello")
async def hello(payload, ctx):
    return {{"project": "{letter}"}}

@task(id="only-{letter}")
async def only(payload, ctx):
    return {{"only": "{letter}"}}

@task(id="relay")
async def relay(payload, ctx):
    child = await tasks.trigger_and_wait("hello", {{}})
    listed = await runs.list(limit=100)
    return {{"child": child.unwrap(), "seen": sorted({{r["project"] for r in listed["data"]}})}}
'''


def make_project(root: Path, letter: str) -> Path:
    (root / "trigger").mkdir(parents=True)
    (root / "trigger.toml").write_text(f'project = "proj_{letter}"\ndirs = ["trigger"]\n')
    (root / "trigger" / "tasks.py").write_text(textwrap.dedent(TASKS.format(letter=letter)))
    return root


def cli(d: DaemonProcess, *args: str, cwd: Path,
        **extra_env: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("TRIGGER_API_URL", "TRIGGER_SECRET_KEY",
                                                             "TRIGGER_LOCAL_PROJECT")}
    return subprocess.run([sys.executable, "-m", "trigger_local", *args], capture_output=True,
                          text=True, env=env | {"TRIGGER_LOCAL_HOME": str(d.home), **extra_env},
                          cwd=cwd, timeout=60)


class Dev:
    """`trigger-local dev` in a project directory, its output collected as it comes."""

    def __init__(self, d: DaemonProcess, root: Path, **extra_env: str) -> None:
        env = {**os.environ, "TRIGGER_LOCAL_HOME": str(d.home), "PYTHONUNBUFFERED": "1",
               "COLUMNS": "200", **extra_env}
        self.proc = subprocess.Popen([sys.executable, "-m", "trigger_local", "dev"], cwd=root,
                                     env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.reader = _Reader(self.proc.stdout)
        self.reader.start()

    def text(self) -> str:
        return self.reader.text()

    def stop(self, sig: int = signal.SIGINT) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(30)
        self.reader.join(5)
        assert self.proc.stdout is not None
        self.proc.stdout.close()


def projects(d: DaemonProcess) -> dict[str, dict[str, Any]]:
    return {p["ref"]: p for p in d.api("GET", "/api/v1/local/projects").json()["data"]}


def wait_online(d: DaemonProcess, ref: str, online: bool = True) -> dict[str, Any]:
    return wait_for(lambda: (p := projects(d).get(ref)) is not None and p["online"] == online
                    and p["tasks"] and p,
                    60, what=f"{ref} to be {'online' if online else 'offline'}")


def as_key(d: DaemonProcess, key: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
    return httpx.request(method, d.url + path, headers={"Authorization": f"Bearer {key}"},
                         timeout=30, **kwargs)


def trigger_with(d: DaemonProcess, key: str, task: str) -> str:
    r = as_key(d, key, "POST", f"/api/v1/tasks/{task}/trigger", json={"payload": "{}"})
    assert r.status_code == 200, r.text
    return str(r.json()["id"])


@pytest.fixture
def two(tmp_path: Path, daemon: DaemonProcess) -> Iterator[tuple[Path, Path, Dev, Dev]]:
    a, b = make_project(tmp_path / "alpha", "a"), make_project(tmp_path / "beta", "b")
    dev_a, dev_b = Dev(daemon, a), Dev(daemon, b)
    try:
        wait_online(daemon, "proj_a")
        wait_online(daemon, "proj_b")
        yield a, b, dev_a, dev_b
    finally:
        dev_a.stop()
        dev_b.stop()


def test_two_projects_each_run_their_own_hello(daemon: DaemonProcess,
                                               two: tuple[Path, Path, Dev, Dev]) -> None:
    a, b, dev_a, dev_b = two
    for root, letter in ((a, "a"), (b, "b")):  # the CLI in a project's directory means that project
        r = cli(daemon, "trigger", "hello", "--wait", "--json", cwd=root)
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["output"] == {"project": letter}
    keys = {ref: p["key"] for ref, p in projects(daemon).items()}
    by_key = {ref: trigger_with(daemon, key, "hello") for ref, key in keys.items()}
    assert daemon.wait_status(by_key["proj_a"])["output"] == {"project": "a"}
    assert daemon.wait_status(by_key["proj_b"])["output"] == {"project": "b"}
    # the daemon's own key with no project: a unique task id resolves, an ambiguous one is a 400
    assert daemon.wait_status(daemon.trigger("only-b"))["output"] == {"only": "b"}
    r = daemon.api("POST", "/api/v1/tasks/hello/trigger", json={})
    assert r.status_code == 400 and r.json()["code"] == "ambiguous_project", r.text
    assert r.json()["projects"] == ["proj_a", "proj_b"] and str(a) in r.json()["error"]
    # each dev prints its own project's runs only
    wait_for(lambda: by_key["proj_a"] in dev_a.text() and by_key["proj_b"] in dev_b.text(), 30,
             what="each dev to print its run")
    assert by_key["proj_b"] not in dev_a.text() and by_key["proj_a"] not in dev_b.text()
    # a project key sees its project's runs only; the CLI filters with --project
    listed = as_key(daemon, keys["proj_b"], "GET", "/api/v1/runs",
                    params={"page[size]": "100"}).json()["data"]
    assert listed and {run["project"] for run in listed} == {"proj_b"}
    r = cli(daemon, "runs", "ls", "--project", "proj_a", "--json", cwd=b)
    assert r.returncode == 0, r.stderr
    assert {run["project"] for run in json.loads(r.stdout)["data"]} == {"proj_a"}
    assert as_key(daemon, keys["proj_b"], "GET",
                  f"/api/v3/runs/{by_key['proj_a']}").status_code == 404


def test_a_task_triggers_and_lists_within_its_own_project(daemon: DaemonProcess,
                                                          two: tuple[Path, Path, Dev, Dev]) -> None:
    a, b, _, _ = two
    r = cli(daemon, "trigger", "relay", "--wait", "--json", cwd=b)
    assert r.returncode == 0, r.stderr + r.stdout
    # the child `hello` is b's, and the task's own key (TRIGGER_SECRET_KEY) lists b's runs only
    assert json.loads(r.stdout)["output"] == {"child": {"project": "b"}, "seen": ["proj_b"]}


def test_runs_wait_while_their_dev_is_stopped(daemon: DaemonProcess,
                                              two: tuple[Path, Path, Dev, Dev]) -> None:
    a, b, dev_a, _ = two
    dev_a.stop()  # Ctrl-C
    wait_online(daemon, "proj_a", online=False)
    key_a = projects(daemon)["proj_a"]["key"]
    waiting = trigger_with(daemon, key_a, "hello")
    assert daemon.wait_status(trigger_with(daemon, projects(daemon)["proj_b"]["key"],
                                           "hello"))["status"] == \
        "COMPLETED"  # the other project runs on
    run = daemon.run(waiting)
    assert run["status"] == "QUEUED"
    assert run["statusReason"].startswith(f"waiting for `trigger-local dev` in {a}; it stopped at ")
    shown = cli(daemon, "runs", "show", waiting, cwd=b)
    assert shown.returncode == 0 and "waiting for `trigger-local dev`" in shown.stdout, shown.stderr
    again = Dev(daemon, a)
    try:
        assert daemon.wait_status(waiting, timeout=60)["output"] == {"project": "a"}
        again.proc.kill()  # a dev that dies, not one that stops: its connection closes all the same
        again.proc.wait(10)
        wait_online(daemon, "proj_a", online=False)
        assert daemon.run(trigger_with(daemon, key_a, "hello"))["status"] == "QUEUED"
    finally:
        again.stop()


def test_trigger_toml_change_reindexes(daemon: DaemonProcess,
                                       two: tuple[Path, Path, Dev, Dev]) -> None:
    a, _, _, _ = two
    key_a = projects(daemon)["proj_a"]["key"]

    def tasks() -> set[str]:
        return {t["id"] for t in as_key(daemon, key_a, "GET", "/api/v1/local/tasks").json()["data"]}

    (a / "more").mkdir()
    (a / "more" / "extra.py").write_text(textwrap.dedent('''
        from trigger_local import task

        @task(id="from-more")
        async def from_more(payload, ctx):
            return {"more": True}
    '''))
    assert "from-more" not in tasks()
    (a / "trigger.toml").write_text('project = "proj_a"\ndirs = ["trigger", "more"]\n')
    wait_for(lambda: "from-more" in tasks(), 60, what="dev to re-index after trigger.toml changed")
    assert daemon.wait_status(trigger_with(daemon, key_a, "from-more"))["output"] == {"more": True}
    # and the new directory is watched from then on
    extra = a / "more" / "extra.py"
    extra.write_text(extra.read_text().replace("from-more", "renamed"))
    wait_for(lambda: "renamed" in tasks(), 60, what="dev to watch the directory trigger.toml added")


def test_queues_are_per_project(daemon: DaemonProcess, tmp_path: Path) -> None:
    a, b = make_project(tmp_path / "alpha", "a"), make_project(tmp_path / "beta", "b")
    daemon.register(a)  # through the API, with no dev: both stay online
    daemon.register(b)
    paused = cli(daemon, "queues", "pause", "hello", cwd=a)
    assert paused.returncode == 0, paused.stderr
    keys = {ref: p["key"] for ref, p in projects(daemon).items()}
    run = daemon.wait_status(trigger_with(daemon, keys["proj_b"], "hello"))
    assert run["output"] == {"project": "b"}
    held = trigger_with(daemon, keys["proj_a"], "hello")
    listed = {(q["project"], q["name"]): q
              for q in daemon.api("GET", "/api/v1/queues").json()["data"]}
    assert listed[("proj_a", "hello")]["paused"] and not listed[("proj_b", "hello")]["paused"]
    assert daemon.run(held)["status"] == "QUEUED"
    # no project here: which hello?
    ambiguous = cli(daemon, "queues", "pause", "hello", cwd=tmp_path)
    assert (ambiguous.returncode == 1 and "proj_a" in ambiguous.stderr
            and "proj_b" in ambiguous.stderr)
    assert cli(daemon, "queues", "resume", "hello", cwd=a).returncode == 0
    assert daemon.wait_status(held)["output"] == {"project": "a"}


def test_dev_takes_its_project_back_online_after_a_daemon_restart(
        daemon: DaemonProcess, tmp_path: Path) -> None:
    a = make_project(tmp_path / "alpha", "a")
    dev = Dev(daemon, a)
    try:
        wait_online(daemon, "proj_a")
        daemon.stop()
        daemon.start()  # the same home and port: dev's stream reconnects to it
        wait_online(daemon, "proj_a")
        assert projects(daemon)["proj_a"]["leftAt"] is None  # the daemon stopped, dev did not
        assert daemon.wait_status(trigger_with(daemon, projects(daemon)["proj_a"]["key"], "hello"),
                                  timeout=60)["output"] == {"project": "a"}
    finally:
        dev.stop()


def test_dev_with_a_project_key_in_a_directory_naming_no_project_serves_the_keys_project(
        daemon: DaemonProcess, tmp_path: Path) -> None:
    """TRIGGER_SECRET_KEY a project's key, trigger.toml naming no project: dev registers the
    directory as the key's project and serves it (it sent the ref derived from the directory's
    name, in the header and the body: 403 at its first request)."""
    daemon.register(make_project(tmp_path / "alpha", "a"))
    key = projects(daemon)["proj_a"]["key"]
    loose = make_project(tmp_path / "loose", "l")
    (loose / "trigger.toml").write_text('dirs = ["trigger"]\n')
    dev = Dev(daemon, loose, TRIGGER_SECRET_KEY=key)
    try:
        wait_for(lambda: "only-l" in (projects(daemon)["proj_a"].get("taskIds") or ()), 60,
                 what=f"dev to register {loose} as proj_a: {dev.text()}")
        assert "proj_loose" not in projects(daemon)
        wait_for(lambda: "Project proj_a" in dev.text(), 30, what="dev to name its project")
        run_id = trigger_with(daemon, key, "only-l")
        done = wait_for(lambda: (r := as_key(daemon, key, "GET", f"/api/v3/runs/{run_id}").json())
                        ["status"] == "COMPLETED" and r, 60, what="the run to complete")
        assert done["output"] == {"only": "l"}
        wait_for(lambda: run_id in dev.text(), 30, what="dev to print the run")
        assert "403" not in dev.text() and "Error" not in dev.text(), dev.text()
    finally:
        dev.stop()


def test_dev_with_another_projects_key_says_what_to_change_in_one_line(
        daemon: DaemonProcess, tmp_path: Path) -> None:
    daemon.register(make_project(tmp_path / "alpha", "a"))
    key = projects(daemon)["proj_a"]["key"]
    beta = make_project(tmp_path / "beta", "b")  # names proj_b
    dev = Dev(daemon, beta, TRIGGER_SECRET_KEY=key)
    try:
        assert dev.proc.wait(60) == 1, dev.text()
    finally:
        dev.stop()
    errors = [line for line in dev.text().splitlines() if "Error" in line]
    assert len(errors) == 1 and "Traceback" not in dev.text(), dev.text()
    assert str(beta) in errors[0] and "proj_a" in errors[0] and "proj_b" in errors[0], errors
    assert "Set TRIGGER_SECRET_KEY to that project's key" in errors[0], errors
    assert "proj_b" not in projects(daemon)


def test_dev_with_a_project_key_serves_its_project_when_the_first_import_fails(
        daemon: DaemonProcess, tmp_path: Path) -> None:
    """The ref dev serves comes from its registration; when the first one fails (an import
    error), a config naming no project still means the key's project, not the directory's."""
    loose = make_project(tmp_path / "loose", "l")
    (loose / "trigger.toml").write_text('dirs = ["trigger"]\n')
    r = daemon.api("POST", "/api/v1/local/versions",  # an earlier dev of it, say
                   json={"projectDir": str(loose), "dirs": ["trigger"], "project": "proj_a"})
    assert r.status_code == 200, r.text
    key = projects(daemon)["proj_a"]["key"]
    good = (loose / "trigger" / "tasks.py").read_text()
    (loose / "trigger" / "tasks.py").write_text(good + "\nthis is not python\n")
    dev = Dev(daemon, loose, TRIGGER_SECRET_KEY=key)
    try:
        wait_for(lambda: "Project proj_a" in dev.text(), 60, what="dev to name the key's project")
        assert "proj_loose" not in dev.text() and "Indexing failed" in dev.text(), dev.text()
        (loose / "trigger" / "tasks.py").write_text(good.replace("only-", "mended-"))
        wait_for(lambda: "mended-l" in (projects(daemon)["proj_a"].get("taskIds") or ()), 60,
                 what="dev to register the mended file as proj_a")
        assert "proj_loose" not in projects(daemon)
    finally:
        dev.stop()


def test_envvars_with_a_project_key_in_a_directory_naming_no_project_are_the_keys_projects(
        daemon: DaemonProcess, tmp_path: Path) -> None:
    """As dev there (above), `envvars ls` and `envvars delete` mean the key's project: they named
    the ref the directory's name derives in the route (403), and delete's error named it."""
    daemon.register(make_project(tmp_path / "alpha", "a"))
    key = projects(daemon)["proj_a"]["key"]
    r = daemon.api("POST", "/api/v1/projects/proj_a/envvars/dev",
                   json={"name": "API_KEY", "value": "v"})
    assert r.status_code == 200, r.text
    loose = make_project(tmp_path / "loose", "l")
    (loose / "trigger.toml").write_text('dirs = ["trigger"]\n')
    listed = cli(daemon, "envvars", "ls", "--json", cwd=loose, TRIGGER_SECRET_KEY=key)
    assert listed.returncode == 0, listed.stderr
    assert [v["name"] for v in json.loads(listed.stdout)] == ["API_KEY"], listed.stdout
    typo = cli(daemon, "envvars", "delete", "API_KEYS", cwd=loose, TRIGGER_SECRET_KEY=key)
    assert typo.returncode == 1 and "proj_a has no variable 'API_KEYS' in dev" in typo.stderr, \
        typo.stderr
    gone = cli(daemon, "envvars", "delete", "API_KEY", cwd=loose, TRIGGER_SECRET_KEY=key)
    assert gone.returncode == 0 and "Deleted API_KEY." in gone.stderr, gone.stderr
    # the daemon's own key there: the directory's derived project, as before (none such)
    mine = cli(daemon, "envvars", "ls", cwd=loose)
    assert mine.returncode == 1 and "proj_loose" in mine.stderr, mine.stderr
