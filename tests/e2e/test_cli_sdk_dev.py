"""What a user types: the CLI, the SDK from app code, and `dev` watching a project."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

from pg_cluster import free_port

from .conftest import DaemonProcess, wait_for


def _cli(d: DaemonProcess, *args: str, cwd: Path | None = None,
         input_: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TRIGGER_LOCAL_HOME": str(d.home)}
    env.pop("TRIGGER_API_URL", None)
    env.pop("TRIGGER_SECRET_KEY", None)
    return subprocess.run([sys.executable, "-m", "trigger_local", *args], capture_output=True,
                          text=True, env=env, cwd=cwd, input=input_, timeout=60)


def test_cli_trigger_wait_prints_output(ready: DaemonProcess) -> None:
    r = _cli(ready, "trigger", "hello", "--payload", '{"name": "Ada"}', "--wait")
    assert r.returncode == 0, r.stderr
    assert "Hello, Ada!" in r.stdout


def test_cli_listings_are_json(ready: DaemonProcess) -> None:
    run_id = ready.trigger("hello", {"name": "json"})
    ready.wait_status(run_id)
    r = _cli(ready, "runs", "ls", "--json")
    assert r.returncode == 0, r.stderr
    listed = json.loads(r.stdout)
    ids = [item["id"] for item in (listed["data"] if isinstance(listed, dict) else listed)]
    assert run_id in ids
    shown = json.loads(_cli(ready, "runs", "show", run_id, "--json").stdout)
    assert shown["id"] == run_id and shown["status"] == "COMPLETED"
    queues = json.loads(_cli(ready, "queues", "ls", "--json").stdout)
    names = [q["name"] for q in (queues["data"] if isinstance(queues, dict) else queues)]
    assert "hello" in names or "task/hello" in names


def test_cli_unknown_task_names_the_known_ones(ready: DaemonProcess) -> None:
    r = _cli(ready, "trigger", "helo")
    assert r.returncode == 1
    assert "hello" in r.stderr and r.stdout == ""


def test_cli_malformed_payload_is_refused(ready: DaemonProcess) -> None:
    r = _cli(ready, "trigger", "hello", "--payload", "{name: Ada}")
    assert r.returncode == 1
    assert "JSON" in r.stderr


def test_cli_says_how_to_start_a_missing_daemon(tmp_path: Path) -> None:
    # a free port, not the default one: a daemon of another home may listen there (a user's)
    env = {**os.environ, "TRIGGER_LOCAL_HOME": str(tmp_path / "nothing-here"),
           "TRIGGER_LOCAL_PORT": str(free_port())}
    r = subprocess.run([sys.executable, "-m", "trigger_local", "runs", "ls"], capture_output=True,
                       text=True, env=env, timeout=60)
    assert r.returncode == 1
    assert "trigger-local up" in r.stderr or "trigger-local dev" in r.stderr


def test_sdk_from_app_code_async_and_blocking(ready: DaemonProcess, project: Path) -> None:
    script = textwrap.dedent('''
        import asyncio, json, sys
        sys.path.insert(0, ".")
        from trigger_local import runs, tasks
        from trigger.tasks import hello

        async def main():
            handle = await hello.trigger({"name": "async"})
            run = await runs.poll(handle.id, interval_s=0.05, timeout_s=30)
            blocking = tasks.trigger_sync("sync-hello", {"a": 1, "b": 2})
            done = runs.poll_sync(blocking.id, interval_s=0.05, timeout_s=30)
            print(json.dumps({"async": run["output"], "sync": done["output"]}))

        asyncio.run(main())
    ''')
    env = {**os.environ, "TRIGGER_LOCAL_HOME": str(ready.home)}
    r = subprocess.run([sys.executable, "-c", script], cwd=project, capture_output=True, text=True,
                       env=env, timeout=90)
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout.strip().splitlines()[-1])
    assert result["async"]["message"] == "Hello, async!"
    assert result["sync"] == {"sum": 3}


def test_broken_module_keeps_the_last_good_version(ready: DaemonProcess, project: Path) -> None:
    good = ready.api("GET", "/api/v1/local/status").json()["current_version"]
    (project / "trigger" / "broken.py").write_text("import nonexistent_module_xyz\n")
    r = ready.api("POST", "/api/v1/local/versions", json={"projectDir": str(project),
                                                          "dirs": ["trigger"]})
    assert r.status_code == 422
    assert "nonexistent_module_xyz" in r.json()["traceback"]
    assert ready.api("GET", "/api/v1/local/status").json()["current_version"] == good
    assert ready.wait_status(ready.trigger("hello", {"name": "still"}))["status"] == "COMPLETED"


class _Reader(threading.Thread):
    """Collects a subprocess's output lines as they come."""

    def __init__(self, stream) -> None:  # type: ignore[no-untyped-def]
        super().__init__(daemon=True)
        self.stream, self.lines = stream, []  # type: ignore[var-annotated]

    def run(self) -> None:
        for line in self.stream:
            self.lines.append(line)

    def text(self) -> str:
        return "".join(self.lines)


def test_dev_indexes_watches_and_survives_a_broken_file(
        daemon: DaemonProcess, project: Path) -> None:
    env = {**os.environ, "TRIGGER_LOCAL_HOME": str(daemon.home), "PYTHONUNBUFFERED": "1",
           "COLUMNS": "200"}
    proc = subprocess.Popen([sys.executable, "-m", "trigger_local", "dev"], cwd=project, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    reader = _Reader(proc.stdout)
    reader.start()
    try:
        tasks = lambda: {t["id"] if isinstance(t, dict) else t  # noqa: E731
                         for t in daemon.api("GET", "/api/v1/local/tasks").json().get("data", [])}
        wait_for(lambda: "hello" in tasks(), 60, what="dev to index the project")
        first = daemon.api("GET", "/api/v1/local/status").json()["current_version"]
        (project / "trigger" / "extra.py").write_text(textwrap.dedent('''
            from trigger_local import task

            @task(id="added-later")
            async def added_later(payload, ctx):
                return {"added": True}
        '''))
        wait_for(lambda: "added-later" in tasks(), 60, what="dev to re-index after a change")
        second = daemon.api("GET", "/api/v1/local/status").json()["current_version"]
        assert second != first
        assert daemon.wait_status(daemon.trigger("added-later", {}))["output"] == {"added": True}
        (project / "trigger" / "extra.py").write_text("raise RuntimeError('broken on purpose')\n")
        wait_for(lambda: "broken on purpose" in reader.text(), 60, what="dev to show the traceback")
        assert daemon.api("GET", "/api/v1/local/status").json()["current_version"] == second
        run_id = daemon.trigger("hello", {"name": "dev"})
        assert daemon.wait_status(run_id)["status"] == "COMPLETED"
        wait_for(lambda: run_id in reader.text(), 30, what="dev to print the run")
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(30)
        reader.join(5)
        proc.stdout.close()  # type: ignore[union-attr]


def test_cli_logs_follow_cancel_and_replay(ready: DaemonProcess) -> None:
    run_id = ready.trigger("traced", {})
    follow = _cli(ready, "runs", "logs", run_id, "--follow")
    assert follow.returncode == 0, follow.stderr
    assert "inside outer" in follow.stdout and "inside inner" in follow.stdout
    sleeper = ready.trigger("sleeper", {"seconds": 60})
    r = _cli(ready, "runs", "cancel", sleeper)
    assert r.returncode == 0, r.stderr
    assert ready.run(sleeper)["status"] == "CANCELED"
    r = _cli(ready, "runs", "replay", run_id)
    assert r.returncode == 0, r.stderr
    new_ids = [w for w in (r.stdout + r.stderr).split() if w.startswith("run_") and w != run_id]
    assert new_ids and ready.wait_status(new_ids[0].strip(".,:"))["status"] == "COMPLETED"
