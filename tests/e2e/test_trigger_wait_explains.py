"""`trigger --wait` against a real daemon: it sees every event of the run from before the
trigger (the first attempt's EXECUTING and its "; retrying in …" line always show), and a run
that cannot start gets a line saying why after a short grace (its project's dev stopped, its
queue is paused, no project has the task) while the wait goes on. A TRIGGER_LOCAL_PROJECT that
names no registered project is refused, listing the known ones, and nothing is stored."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

from .conftest import DaemonProcess, wait_for, write_project
from .test_cli_watch import WATCH_TASKS, Live, _env, cli, live, watched  # noqa: F401

__all__ = ["live", "watched"]


def _lines_in_order(text: str, *parts: str) -> None:
    at = 0
    for part in parts:
        found = text.find(part, at)
        assert found >= 0, (part, text)
        at = found + len(part)


def test_trigger_wait_shows_every_attempt_from_the_first(watched: DaemonProcess) -> None:
    for _ in range(3):  # the first attempt used to be missed often, not always
        r = cli(watched, "trigger", "flaky", "--wait")
        assert r.returncode == 0, r.stderr
        _lines_in_order(r.stderr, "EXECUTING", "trying attempt=1",
                        "attempt 1 failed: RuntimeError: failure number 1; retrying in ",
                        "EXECUTING", "attempt 2 failed: RuntimeError: failure number 2; retrying",
                        "trying attempt=3", "COMPLETED")
        assert json.loads(r.stdout) == {"attempt": 3}


def _watch(d: DaemonProcess, live: list[Live], task: str, **env: str) -> Live:
    watch = Live([sys.executable, "-m", "trigger_local", "trigger", task, "--wait"],
                 _env(d, **env))
    live.append(watch)
    return watch


def _still_waiting_says(watch: Live, *words: str) -> None:
    wait_for(lambda: "not started yet" in watch.stderr() or watch.proc.poll() is not None, 60,
             what="the reason the run does not start")
    assert watch.proc.poll() is None, watch.stderr()  # it keeps waiting
    for word in words:
        assert word in watch.stderr(), (word, watch.stderr())
    assert "Ctrl-C" in watch.stderr()
    watch.proc.send_signal(signal.SIGINT)
    assert watch.wait() == 130, watch.stderr()


def test_a_run_whose_project_dev_stopped_says_so(daemon: DaemonProcess, tmp_path: Path,
                                                 live: list[Live]) -> None:
    project = write_project(tmp_path / "devproj", WATCH_TASKS)
    r = daemon.api("POST", "/api/v1/local/versions",
                   json={"projectDir": str(project), "dirs": ["trigger"], "dev": True})
    assert r.status_code == 200, r.text  # a dev project with no dev session: offline
    watch = _watch(daemon, live, "greet")
    _still_waiting_says(watch, "QUEUED", "waiting for `trigger-local dev`", str(project))


def test_a_run_on_a_paused_queue_says_so(watched: DaemonProcess, live: list[Live]) -> None:
    r = watched.api("POST", "/api/v1/queues/greet/pause", json={"type": "task", "action": "pause"})
    assert r.status_code == 200, r.text
    watch = _watch(watched, live, "greet")
    _still_waiting_says(watch, "QUEUED", "paused", "trigger-local queues resume")


def test_a_run_no_project_has_says_so(daemon: DaemonProcess, live: list[Live]) -> None:
    watch = _watch(daemon, live, "greet")  # nothing registered: the run waits for a version
    _still_waiting_says(watch, "PENDING_VERSION", "no version with task 'greet'",
                        "registered projects: none yet")


def test_an_unknown_project_is_refused_and_nothing_is_stored(watched: DaemonProcess) -> None:
    env = _env(watched, TRIGGER_LOCAL_PROJECT="proj_thre")
    r = subprocess.run([sys.executable, "-m", "trigger_local", "trigger", "greet"],
                       capture_output=True, text=True, env=env, timeout=90)
    assert r.returncode == 1, r.stderr
    assert "proj_thre" in r.stderr and "proj_test" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and r.stdout == ""
    assert watched.api("GET", "/api/v1/runs").json()["data"] == []
    queues = watched.api("GET", "/api/v1/queues").json()["data"]
    assert not [q for q in queues if q.get("project") == "proj_thre"], queues
