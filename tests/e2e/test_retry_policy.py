"""A run's retry policy end to end: the built-in default of 3 attempts (crashes included),
trigger.toml's `[retry]`, `machine` and `max_duration` applied through `dev` and re-read when it
re-registers, a run keeping its own version's policy, and `runs show` printing it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from .conftest import DaemonProcess, wait_for, write_project

TASKS = '''
import os, time
from pathlib import Path
from trigger_local import Retry, task

@task(id="always-fails")
async def always_fails(payload, ctx):
    raise RuntimeError(f"failure number {ctx.attempt.number}")

@task(id="fails-once", retry=Retry(max_attempts=1))
async def fails_once(payload, ctx):
    raise RuntimeError("no retries for me")

@task(id="killed-once")
def killed_once(payload, ctx):
    if ctx.attempt.number == 1:
        Path(payload["pid_file"]).write_text(str(os.getpid()))
        time.sleep(600)  # until the test kills this process from outside
    return {"attempt": ctx.attempt.number}
'''

FAST_RETRY = '''
[retry]
max_attempts = {attempts}
min_timeout_s = 0.05
max_timeout_s = 0.1
randomize = false
'''


def _cli(d: DaemonProcess, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TRIGGER_LOCAL_HOME": str(d.home), "COLUMNS": "200"}
    env.pop("TRIGGER_API_URL", None)
    env.pop("TRIGGER_SECRET_KEY", None)
    return subprocess.run([sys.executable, "-m", "trigger_local", *args], capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=60)


def test_default_policy_is_three_attempts_and_a_killed_process_is_retried(daemon: DaemonProcess,
                                                                           tmp_path: Path) -> None:
    project = write_project(tmp_path / "project", TASKS)  # no [retry]: the built-in default
    daemon.register(project)
    pid_file = tmp_path / "pid"
    run_id = daemon.trigger("killed-once", {"pid_file": str(pid_file)})
    pid = int(wait_for(lambda: pid_file.exists() and pid_file.read_text(), 30,
                       what="the first attempt"))
    policy = daemon.run(run_id)["retryPolicy"]
    assert (policy["maxAttempts"], policy["factor"], policy["minTimeoutInMs"],
            policy["maxTimeoutInMs"],
            policy["randomize"], policy["source"]) == (3, 2, 1000, 60000, True, "default")
    os.kill(pid, signal.SIGKILL)  # a crash, from outside the daemon
    run = daemon.wait_status(run_id, timeout=60)
    assert (run["status"], run["attemptCount"], run["output"]) == ("COMPLETED", 2, {"attempt": 2})
    assert [a["rawStatus"] for a in run["attempts"]] == ["CRASHED", "COMPLETED"]
    once = daemon.wait_status(daemon.trigger("fails-once", {}))
    assert (once["status"], once["attemptCount"],
            once["retryPolicy"]["source"]) == ("FAILED", 1, "task")


def test_trigger_toml_defaults_apply_through_dev_and_follow_its_changes(daemon: DaemonProcess,
                                                                       tmp_path: Path) -> None:
    project = write_project(tmp_path / "project", TASKS)
    (project / "trigger.toml").write_text('project = "proj_test"\ndirs = ["trigger"]\nmachine = '
                                          '"small-2x"\n'
                                          'max_duration = "10m"\n' + FAST_RETRY.format(attempts=2))
    env = {**os.environ, "TRIGGER_LOCAL_HOME": str(daemon.home), "PYTHONUNBUFFERED": "1"}
    dev = subprocess.Popen([sys.executable, "-m", "trigger_local", "dev"], cwd=project, env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        version = lambda: daemon.api("GET", "/api/v1/local/status").json()["current_version"]  # noqa: E731
        first = wait_for(version, 60, what="dev to register the project")
        old = daemon.wait_status(daemon.trigger("always-fails", {}))
        assert (old["status"], old["attemptCount"]) == ("FAILED", 2)
        assert (old["retryPolicy"]["maxAttempts"], old["retryPolicy"]["source"]) == (2, "project")
        assert (old["machine"], daemon.run(old["id"])["version"]) == ("small-2x", first)
        shown = _cli(daemon, "runs", "show", old["id"])
        assert shown.returncode == 0, shown.stderr
        assert "2 attempts" in shown.stdout and "trigger.toml [retry]" in shown.stdout

        (project / "trigger.toml").write_text('project = "proj_test"\ndirs = ["trigger"]\n'
                                              + FAST_RETRY.format(attempts=3))
        second = wait_for(lambda: (v := version()) != first and v, 60, what="dev to re-register")
        new = daemon.wait_status(daemon.trigger("always-fails", {}))
        assert (new["status"], new["attemptCount"],
                new["retryPolicy"]["maxAttempts"]) == ("FAILED", 3, 3)
        assert (new["version"], new.get("machine")) == (second, None)
        # the run of the first version keeps the policy it ran under
        assert daemon.run(old["id"])["retryPolicy"]["maxAttempts"] == 2
        current = daemon.api("GET", "/api/v1/local/versions/current").json()
        assert current["defaults"]["retry"]["max_attempts"] == 3
    finally:
        dev.send_signal(signal.SIGINT)
        dev.wait(30)


def test_a_bad_defaults_body_is_refused_naming_the_key(
        daemon: DaemonProcess, tmp_path: Path) -> None:
    project = write_project(tmp_path / "project", TASKS)
    for defaults, word in (({"retry": {"max_attempts": 0}}, "max_attempts"),
                           ({"machine": "huge"}, "machine"),
                           ({"maxDuration": "999999999w"}, "maxDuration"),
                           ({"retries": 3}, "retries")):
        r = daemon.api("POST", "/api/v1/local/versions",
                       json={"projectDir": str(project), "dirs": ["trigger"], "defaults": defaults})
        assert 400 <= r.status_code < 500 and word in r.json()["error"], (defaults, r.text)
    assert daemon.api("GET", "/api/v1/local/status").json()["current_version"] is None


def test_the_project_max_duration_stops_a_task_that_sets_none(
        daemon: DaemonProcess, tmp_path: Path) -> None:
    project = write_project(tmp_path / "project", TASKS + textwrap.dedent('''
        @task(id="slow", retry=Retry(max_attempts=1))
        def slow(payload, ctx):
            time.sleep(600)
    '''))
    r = daemon.api("POST", "/api/v1/local/versions", json={"projectDir": str(project),
                                                           "dirs": ["trigger"],
                                                           "defaults": {"maxDuration": 1}})
    assert r.status_code == 200, r.text
    run = daemon.wait_status(daemon.trigger("slow", {}), timeout=30)
    assert run["status"] == "TIMED_OUT"
