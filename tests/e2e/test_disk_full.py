"""A full disk under the daemon's home: requests are refused with 507 "disk full at <home>", the
dispatcher waits it out (/healthz says so), and once space returns every accepted run completes
and new triggers work, without a restart. On a real 16 MiB tmpfs, filled with dd."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.host_limit import host_limit

from .conftest import DaemonProcess, wait_for, write_project


def _mount_problem(where: Path) -> str | None:
    if os.geteuid() != 0:
        return "mounting a tmpfs needs root"
    where.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(where)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        return ("`mount -t tmpfs` is not permitted here: "
                f"{(done.stderr or done.stdout).strip()[:200]}")
    return None


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MiB tmpfs, unmounted afterwards (skipped with the reason where it cannot be mounted;
    under CI=true that fails instead)."""
    where = tmp_path / "small-disk"
    problem = _mount_problem(where)
    if problem is not None:
        host_limit(f"no small disk can be made: {problem}")
    try:
        yield where
    finally:
        if subprocess.run(["umount", str(where)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(where)], capture_output=True)


class TriggerStream:
    """Triggers `hello` over and over from a thread, keeping every answer."""

    def __init__(self, d: DaemonProcess) -> None:
        self.d = d
        self.answers: list[tuple[float, int, dict[str, Any]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        body = {"payload": json.dumps({"name": "stream"}),
                "options": {"payloadType": "application/json"}}
        with httpx.Client(base_url=self.d.url, headers={"Authorization": f"Bearer {self.d.key}"},
                          timeout=30) as http:
            while not self._stop.wait(0.02):
                r = http.post("/api/v1/tasks/hello/trigger", json=body)
                try:
                    answer = r.json()
                except ValueError:  # a bare "Internal Server Error"
                    answer = {"text": r.text}
                self.answers.append((time.monotonic(), r.status_code, answer))

    def __enter__(self) -> TriggerStream:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def accepted(self, since: float = 0.0) -> list[str]:
        return [body["id"] for at, status, body in list(self.answers) if status == 200
                and at >= since]

    def refused(self) -> list[dict[str, Any]]:
        return [body for _, status, body in list(self.answers) if status == 507]

    def statuses(self) -> set[int]:
        return {status for _, status, _ in list(self.answers)}


def _fill(path: Path) -> None:
    # dd stops at ENOSPC (exit 1): the disk is then full
    subprocess.run(["dd", "if=/dev/zero", f"of={path}", "bs=1M"], capture_output=True)


def _health(d: DaemonProcess) -> tuple[int, dict[str, Any]]:
    r = httpx.get(f"{d.url}/healthz", timeout=10)
    return r.status_code, r.json()


def test_disk_full_is_refused_with_507_waited_out_and_every_run_completes(
        small_disk: Path, tmp_path: Path) -> None:
    home = small_disk / "home"
    d = DaemonProcess(home, env={"TRIGGER_LOCAL_HOME": str(home)}).start()
    try:
        d.register(write_project(tmp_path / "project"))
        with TriggerStream(d) as stream:
            wait_for(lambda: len(stream.accepted()) >= 10, 30,
                     what="triggers before the disk fills")
            # due while the disk is full: the dispatcher's timer round has to write, and fails
            delayed = [d.trigger("hello", {"name": f"later-{i}"}, delay=f"{i}s")
                       for i in range(1, 9)]
            filler = small_disk / "filler"
            _fill(filler)
            refused = wait_for(stream.refused, 20, what="a trigger refused with 507")[0]
            assert refused["code"] == "disk_full"
            assert refused["error"] == f"disk full at {home}: free space, then retry"
            status, health = wait_for(lambda: (h := _health(d))[0] == 503 and h, 20,
                                      what="/healthz to report the dispatcher waiting for space")
            assert health["ok"] is False and health["loops"]["dispatcher"]["failing"] is True
            assert f"disk full at {home}" in health["error"]
            filler.unlink()
            space_back = time.monotonic()
            wait_for(lambda: _health(d)[0] == 200, 30, what="/healthz to be 200 once space is back")
            wait_for(lambda: len(stream.accepted(space_back)) >= 5, 30,
                     what="triggers after space is back")
        assert stream.statuses() <= {200, 507}, stream.statuses()  # never a 500
        for run_id in stream.accepted() + delayed:
            assert d.wait_status(run_id, timeout=60)["status"] == "COMPLETED", d.run(run_id)
        assert d.wait_status(d.trigger("hello", {"name": "after"}))["status"] == "COMPLETED"
        assert d.proc is not None and d.proc.poll() is None
    finally:
        (small_disk / "filler").unlink(missing_ok=True)
        d.close()


def test_a_first_start_on_a_full_disk_leaves_no_empty_secret_key(small_disk: Path,
                                                                 tmp_path: Path) -> None:
    """A daemon whose first start met a full disk refuses to start, and once there is space
    again the next start has a real secret key that clients can use (it used to leave an empty
    `secret_key`, then ran with "" as its secret and refused every client's key)."""
    home = small_disk / "home"
    home.mkdir()
    filler = small_disk / "filler"
    _fill(filler)
    try:
        refused = subprocess.run([sys.executable, "-m", "trigger_local.daemon", "--home",
                                  str(home), "--port", "0"], capture_output=True, text=True,
                                 timeout=60)
        assert refused.returncode != 0, refused.stdout
        assert "disk full" in refused.stderr + refused.stdout
        assert "Traceback" not in refused.stderr
    finally:
        filler.unlink(missing_ok=True)
    key_file = home / "secret_key"
    assert not key_file.exists() or key_file.read_text().strip(), "an empty secret_key was left"
    d = DaemonProcess(home).start()
    try:
        assert d.key.startswith("tr_dev_") and len(d.key) > 20
        d.register(write_project(tmp_path / "project"))
        assert d.wait_status(d.trigger("hello", {"name": "x"}))["status"] == "COMPLETED"
    finally:
        d.close()


def test_a_start_on_a_full_disk_says_disk_full_not_damaged(small_disk: Path,
                                                           tmp_path: Path) -> None:
    """A healthy database that cannot be opened because the disk is full is not called damaged
    (that advice is to move it aside, losing its runs): the daemon says "disk full", and once
    there is space it starts with every run kept."""
    home = small_disk / "home"
    d = DaemonProcess(home, env={"TRIGGER_LOCAL_HOME": str(home)}).start()
    try:
        d.register(write_project(tmp_path / "project"))
        run_id = d.trigger("hello", {"name": "kept"})
        assert d.wait_status(run_id)["status"] == "COMPLETED"
    finally:
        d.close()
    filler = small_disk / "filler"
    _fill(filler)
    try:
        refused = subprocess.run([sys.executable, "-m", "trigger_local.daemon", "--home",
                                  str(home), "--port", "0"], capture_output=True, text=True,
                                 timeout=60)
        said = refused.stderr + refused.stdout
        assert refused.returncode == 1 and f"disk full at {home}" in said, said
        assert "damaged" not in said and "Traceback" not in said, said
    finally:
        filler.unlink(missing_ok=True)
    again = DaemonProcess(home, env={"TRIGGER_LOCAL_HOME": str(home)}).start()
    try:
        assert again.run(run_id)["status"] == "COMPLETED"
    finally:
        again.close()


def test_a_detached_start_on_a_full_disk_says_disk_full(small_disk: Path, tmp_path: Path) -> None:
    """`up --detach` and `dev` start the daemon with its output going to the home's log: on a
    full disk the daemon's "disk full" line cannot be written there, and they said only "The
    daemon exited at start (code 1) and wrote nothing to …/daemon.log". They say what a
    foreground `up` says."""
    home = small_disk / "home"
    project = write_project(tmp_path / "project")
    filler = small_disk / "filler"
    _fill(filler)
    env = {**os.environ, "TRIGGER_LOCAL_HOME": str(home), "TRIGGER_LOCAL_PORT": "0"}
    env.pop("TRIGGER_API_URL", None)
    env.pop("TRIGGER_SECRET_KEY", None)
    try:
        for args in (["up", "--detach"], ["dev"]):
            r = subprocess.run([sys.executable, "-m", "trigger_local", *args], cwd=project,
                               env=env, capture_output=True, text=True, timeout=90)
            assert r.returncode == 1, (args, r.stdout, r.stderr)
            assert f"disk full at {home}: free space, then retry" in r.stderr, (args, r.stderr)
            assert "wrote nothing" not in r.stderr and "Traceback" not in r.stderr, r.stderr
    finally:
        filler.unlink(missing_ok=True)


HANGING = '''
import os, time
from pathlib import Path
from trigger_local import task

@task(id="hang")
def hang(payload, ctx):
    Path(payload["pid_file"]).write_text(str(os.getpid()))
    while not Path(payload["release"]).exists():
        time.sleep(0.05)
    return {"done": True}
'''


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_a_stop_on_a_full_disk_stops_every_executing_task_process(small_disk: Path,
                                                                  tmp_path: Path) -> None:
    """SIGTERM with several runs executing, each in its own process, and the disk full: the
    first killed process's run cannot be put back in its queue (the write fails), and the stop
    used to end there, leaving the other task processes running after the daemon was gone.
    Every one is stopped; once there is space the next daemon runs each run again."""
    home = small_disk / "home"
    d = DaemonProcess(home, env={"TRIGGER_LOCAL_HOME": str(home)}).start()
    pids = tmp_path / "pids"
    pids.mkdir()
    release = tmp_path / "release"
    try:
        d.register(write_project(tmp_path / "project", HANGING))
        runs = [d.trigger("hang", {"pid_file": str(pids / str(i)), "release": str(release)})
                for i in range(3)]
        wait_for(lambda: len(list(pids.iterdir())) == 3, 30, what="three task processes")
        workers = [int(p.read_text()) for p in pids.iterdir()]
        _fill(small_disk / "filler")
        for _ in range(200):  # until the database's free pages are gone too
            r = d.api("POST", "/api/v1/tasks/hang/trigger", json={"payload": {"x": "y" * 4000}})
            if r.status_code == 507:
                break
        assert r.status_code == 507, r.text
        assert d.stop() == 0
        deadline = time.monotonic() + 15
        while any(_alive(p) for p in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [p for p in workers if _alive(p)], "task processes outlived the daemon"
    finally:
        (small_disk / "filler").unlink(missing_ok=True)
        d.close()
    release.touch()
    again = DaemonProcess(home, env={"TRIGGER_LOCAL_HOME": str(home)}).start()
    try:
        again.register(tmp_path / "project")
        for run_id in runs:
            assert again.wait_status(run_id)["status"] == "COMPLETED", again.run(run_id)
    finally:
        again.close()
