"""Small things of the command line against a real daemon with two projects: `runs cancel` of
a finished run says so, `up --detach` with a daemon running exits 1, `status` lists each
project's version and tasks, queue completion offers this project's queues once each, `runs ls
--project` with a typo names the known projects."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from trigger_local.cli.completion import complete_queue

from .conftest import DaemonProcess

A_TASKS = '''
from trigger_local import task

@task(id="hello")
async def hello(payload, ctx):
    return {"ok": True}

@task(id="only-a")
async def only_a(payload, ctx):
    return {"ok": True}
'''
B_TASKS = '''
from trigger_local import task

@task(id="hello")
async def hello(payload, ctx):
    return {"ok": True}

@task(id="only-b")
async def only_b(payload, ctx):
    return {"ok": True}
'''


def _project(root: Path, ref: str, source: str) -> Path:
    (root / "trigger").mkdir(parents=True)
    (root / "trigger.toml").write_text(f'project = "{ref}"\ndirs = ["trigger"]\n')
    (root / "trigger" / "tasks.py").write_text(source)
    return root


@pytest.fixture
def two(daemon: DaemonProcess, tmp_path: Path) -> DaemonProcess:
    for ref, source in (("proj_a", A_TASKS), ("proj_b", B_TASKS)):
        daemon.register(_project(tmp_path / ref, ref, source))
    return daemon


def _cli(d: DaemonProcess, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("TRIGGER_")}
    full.update({"TRIGGER_LOCAL_HOME": str(d.home), "COLUMNS": "200", **env})
    return subprocess.run([sys.executable, "-m", "trigger_local", *args], capture_output=True,
                          text=True, env=full, timeout=90)


def test_cancel_of_a_finished_run_says_nothing_changed(two: DaemonProcess) -> None:
    done = two.trigger("only-a", {})
    two.wait_status(done, "COMPLETED")
    r = _cli(two, "runs", "cancel", done)
    assert r.returncode == 0 and "already finished (COMPLETED)" in r.stderr, r.stderr
    waiting = two.trigger("only-a", {}, delay="1h")
    assert "Canceled" in _cli(two, "runs", "cancel", waiting).stderr
    again = _cli(two, "runs", "cancel", waiting)  # canceled already: not "Canceled" again
    assert "Canceled" not in again.stderr and "already finished (CANCELED)" in again.stderr, \
        again.stderr


def test_up_detach_with_a_daemon_running_exits_1(two: DaemonProcess) -> None:
    r = _cli(two, "up", "--detach")
    assert r.returncode == 1 and "already running" in r.stderr, (r.returncode, r.stderr)


def test_status_lists_every_projects_version_and_tasks(two: DaemonProcess) -> None:
    r = _cli(two, "status")
    assert r.returncode == 0, r.stderr
    rows = {line.split()[0]: line for line in r.stdout.splitlines()
            if line.startswith(("proj_a", "proj_b"))}
    assert "hello, only-a" in rows["proj_a"] and "hello, only-b" in rows["proj_b"], r.stdout
    assert all("version_" in row for row in rows.values()), r.stdout
    # no single "current version"/"tasks" line that would be one project's only
    assert not [line for line in r.stdout.splitlines()
                if line.strip().startswith(("current version", "tasks "))], r.stdout


def test_queue_completion_offers_this_projects_queues_once(two: DaemonProcess,
                                                           monkeypatch: pytest.MonkeyPatch,
                                                           tmp_path: Path) -> None:
    monkeypatch.setenv("TRIGGER_LOCAL_HOME", str(two.home))
    for name in ("TRIGGER_API_URL", "TRIGGER_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TRIGGER_LOCAL_PROJECT", "proj_b")
    names = [name for name, _ in complete_queue("")]
    assert sorted(names) == ["hello", "only-b"], names
    monkeypatch.delenv("TRIGGER_LOCAL_PROJECT")  # no project: every name once
    names = [name for name, _ in complete_queue("")]
    assert sorted(names) == ["hello", "only-a", "only-b"], names


def test_runs_ls_of_an_unknown_project_names_the_known_ones(two: DaemonProcess) -> None:
    """A typo in `--project` is an error naming the known projects (as the API's 404 for an
    unknown project is), not "No runs match"; a known project with no runs still says that."""
    r = _cli(two, "runs", "ls", "--project", "proj_nope")
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert "proj_nope" in r.stderr and "proj_a, proj_b" in r.stderr, r.stderr
    assert "No runs match" not in r.stderr
    assert _cli(two, "runs", "ls", "--project", "proj_nope", "--json").returncode == 1
    empty = _cli(two, "runs", "ls", "--project", "proj_b")
    assert empty.returncode == 0 and "No runs match" in empty.stderr, empty.stderr
    run_id = two.trigger("only-a", {})
    mixed = _cli(two, "runs", "ls", "--project", "proj_a", "--project", "proj_nope")
    assert mixed.returncode == 0 and run_id in mixed.stdout, mixed.stderr
    assert "Warning" in mixed.stderr and "proj_nope" in mixed.stderr, mixed.stderr
