"""`dev` never leaks the daemon it started: Ctrl-C (SIGINT) at any moment of its start —
before daemon.json appears, right after, while registering, while streaming — and SIGTERM or
SIGHUP to `dev`, stop the daemon dev started; a daemon that was already running stays. Real `dev`
processes, signalled at moments found by conditions (the daemon process, its daemon.json, the
task module being imported, dev's own output), never by sleeping."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pg_cluster import free_port

from trigger_local.tokens import project_key

from .conftest import DaemonProcess, daemon_pids, wait_for, write_project

#: a module whose import says so (a file) and then takes a while: dev is inside its
#: registration for that long
SLOW_IMPORT = '''
import os, time
from pathlib import Path
from trigger_local import task

Path(os.environ["IMPORT_MARKER"]).write_text("importing")
time.sleep(float(os.environ.get("IMPORT_SECONDS", "0")))

@task(id="hello")
async def hello(payload, ctx):
    return {"ok": True}
'''


def _port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


class Dev:
    """A real `trigger-local dev` in a project, its stderr collected as it comes."""

    def __init__(self, tmp_path: Path, import_seconds: float = 0.0,
                 home: Path | None = None) -> None:
        self.home = home or tmp_path / "home"
        self.port = free_port()
        self.marker = tmp_path / "imported"
        self.project = write_project(tmp_path / "project", SLOW_IMPORT)
        env = {**os.environ, "TRIGGER_LOCAL_HOME": str(self.home),
               "TRIGGER_LOCAL_PORT": str(self.port), "IMPORT_MARKER": str(self.marker),
               "IMPORT_SECONDS": str(import_seconds)}
        env.pop("TRIGGER_API_URL", None)
        env.pop("TRIGGER_SECRET_KEY", None)
        self.proc = subprocess.Popen([sys.executable, "-m", "trigger_local", "dev"],
                                     cwd=self.project, env=env, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        with self.proc.stderr:
            for line in self.proc.stderr:
                self.lines.append(line)

    def stderr(self) -> str:
        return "".join(self.lines)

    def daemons(self) -> dict[int, str]:
        return daemon_pids(self.home)

    def until(self, done: Callable[[], object], what: str, timeout: float = 60,
              interval: float = 0.02) -> None:
        """Wait until `done()` holds or dev exited (the test's next check then says why)."""
        wait_for(lambda: done() or self.proc.poll() is not None, timeout, interval, what)

    def says(self, text: str, what: str, timeout: float = 60) -> None:
        """Wait until dev's stderr has `text`, or dev exited."""
        self.until(lambda: text in self.stderr(), what, timeout)

    def signal_and_wait(self, sig: int) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(60)

    def assert_nothing_left(self) -> None:
        assert self.daemons() == {}, self.stderr()
        assert _port_is_free(self.port), f"port {self.port} still taken\n{self.stderr()}"

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.reader.join(10)
        for pid in self.daemons():
            os.kill(pid, signal.SIGKILL)


DevFactory = Callable[..., Dev]


@pytest.fixture
def running(tmp_path: Path) -> Iterator[DaemonProcess]:
    """A daemon started on its own (as `up --detach` starts one) in `tmp_path / "home"`."""
    home = tmp_path / "home"
    daemon = DaemonProcess(home, env={"TRIGGER_LOCAL_HOME": str(home)}).start()
    try:
        yield daemon
    finally:
        daemon.close()


@pytest.fixture
def dev_factory(tmp_path: Path) -> Iterator[DevFactory]:
    made: list[Dev] = []

    def make(import_seconds: float = 0.0, home: Path | None = None) -> Dev:
        made.append(Dev(tmp_path, import_seconds, home))
        return made[-1]

    yield make
    for dev in made:
        dev.kill()


def test_ctrl_c_before_daemon_json_appears_stops_the_daemon(dev_factory: DevFactory) -> None:
    dev = dev_factory()
    dev.until(lambda: dev.daemons(), "dev to spawn its daemon")
    dev.signal_and_wait(signal.SIGINT)
    dev.assert_nothing_left()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "SIGTERM"])
def test_a_signal_right_when_daemon_json_appears_stops_the_daemon(dev_factory: DevFactory,
                                                                  sig: int) -> None:
    dev = dev_factory()
    dev.until(lambda: (dev.home / "daemon.json").exists(), "daemon.json", interval=0.005)
    dev.signal_and_wait(sig)
    dev.assert_nothing_left()


def test_ctrl_c_while_registering_stops_the_daemon(dev_factory: DevFactory) -> None:
    dev = dev_factory(import_seconds=30)
    dev.until(lambda: dev.marker.exists(), "the task module being imported")
    assert "Registered" not in dev.stderr()
    dev.signal_and_wait(signal.SIGINT)
    dev.assert_nothing_left()
    assert "Stopped the daemon dev started" in dev.stderr()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_sigterm_or_sighup_while_streaming_stops_the_daemon(dev_factory: DevFactory,
                                                            sig: int) -> None:
    dev = dev_factory()
    dev.says("Project", "dev to register and stream")
    dev.signal_and_wait(sig)
    dev.assert_nothing_left()
    assert "Stopped the daemon dev started" in dev.stderr()


def test_a_daemon_that_was_already_running_stays(running: DaemonProcess,
                                                 dev_factory: DevFactory) -> None:
    dev = dev_factory(home=running.home)
    dev.says("Project", "dev to register")
    assert "Using the daemon" in dev.stderr()
    dev.signal_and_wait(signal.SIGINT)
    assert running.proc is not None and running.proc.poll() is None
    assert running.api("GET", "/healthz").status_code == 200


def test_dev_says_when_a_daemon_it_did_not_start_is_lost_and_back(
        running: DaemonProcess, dev_factory: DevFactory) -> None:
    """A daemon started with `up --detach` is killed under a `dev` that uses it: dev stays (the
    daemon may come back) but says the daemon is lost and that no run starts meanwhile — it used
    to print nothing, and the project's runs waited with no word why — and says when it answers
    again; its runs go on then."""
    dev = dev_factory(home=running.home)
    dev.says("Project", "dev to register and stream")
    assert "Using the daemon" in dev.stderr() and "Lost the daemon" not in dev.stderr()
    running.kill9()
    dev.says("Lost the daemon", "dev to say the daemon is lost", 30)
    assert dev.proc.poll() is None, dev.stderr()
    assert f"Lost the daemon at {running.url}" in dev.stderr(), dev.stderr()
    running.start()  # the same home: the same port again
    dev.says("answers again", "dev to say the daemon is back", 30)
    assert dev.proc.poll() is None and "Traceback" not in dev.stderr(), dev.stderr()
    run_id = running.api("POST", "/api/v1/tasks/hello/trigger",
                         json={"payload": {}}).json()["id"]
    assert running.wait_status(run_id, timeout=60)["status"] == "COMPLETED"


@pytest.mark.parametrize(("sent", "said"), [
    (signal.SIGKILL, "It was killed by signal 9"),
    # a normal stop from outside (`trigger-local down` sends it): "exited with code 0" said
    # only that nothing went wrong, not what happened
    (signal.SIGTERM, "It was stopped (`trigger-local down`, or a SIGTERM or SIGINT sent to it)"),
])
def test_dev_ends_saying_so_when_the_daemon_it_started_dies(dev_factory: DevFactory,
                                                            sent: signal.Signals,
                                                            said: str) -> None:
    """The daemon dev started exits under it (here kill -9 or a SIGTERM; also a daemon that
    stops itself, e.g. a loop that failed loop_failure_limit rounds): dev says so and exits 1.
    It used to go on reconnecting forever, silently, with no daemon left."""
    dev = dev_factory()
    dev.says("Project", "dev to register and stream")
    pids = list(dev.daemons())
    assert len(pids) == 1, (pids, dev.stderr())
    os.kill(pids[0], sent)
    assert dev.proc.wait(60) == 1, dev.stderr()
    dev.reader.join(10)
    assert f"The daemon dev started (pid {pids[0]}) stopped" in dev.stderr(), dev.stderr()
    assert said in dev.stderr() and "Traceback" not in dev.stderr(), dev.stderr()


def test_a_dotenv_no_process_can_take_is_one_error_and_dev_goes_on(
        tmp_path: Path, dev_factory: DevFactory) -> None:
    """A `.env` value over Linux's 128 KiB a variable: no task process could start (E2BIG).
    dev used to send it, get "Something went wrong / OSError: Argument list too long" from the
    daemon, and exit; it now names the variable, keeps watching, and takes the fixed file."""
    (tmp_path / "project").mkdir()
    (tmp_path / "project" / ".env").write_text("BIG=" + "v" * 200_000 + "\n")
    dev = dev_factory()
    dev.says("Project", "dev to try to register and stream")
    assert dev.proc.poll() is None, dev.stderr()
    assert "too big to start a process: BIG" in dev.stderr(), dev.stderr()
    assert "Registered" not in dev.stderr() and "Traceback" not in dev.stderr()
    (tmp_path / "project" / ".env").write_text("SMALL=1\n")
    dev.says("Registered", "dev to register the fixed .env")
    assert dev.signal_and_wait(signal.SIGINT) == 0, dev.stderr()
    dev.assert_nothing_left()


def test_a_second_dev_of_a_project_stops_naming_the_first(
        running: DaemonProcess, tmp_path: Path, dev_factory: DevFactory) -> None:
    """A second `dev` in the same directory used to run beside the first: both registered a
    version on each change and both streamed the runs. It exits 1 at once, naming the first
    dev's pid; once the first is gone (kill -9 too), a new one starts."""
    home = running.home
    first = dev_factory(home=home)
    first.says("Project", "the first dev to register")
    env = {**os.environ, "TRIGGER_LOCAL_HOME": str(home),
           "IMPORT_MARKER": str(tmp_path / "second-imported")}
    second = subprocess.run([sys.executable, "-m", "trigger_local", "dev"],
                            cwd=first.project, env=env, capture_output=True, text=True,
                            timeout=30)
    assert second.returncode == 1, second.stderr
    assert second.stderr.strip() == (
        f"Error: `trigger-local dev` of proj_test already runs (pid {first.proc.pid} in "
        f"{first.project}): it registers this project and shows its runs. Stop it (Ctrl-C "
        "there) to start another."), second.stderr
    assert not (tmp_path / "second-imported").exists()  # it registered nothing
    first.proc.kill()  # -9: the kernel releases its lock
    first.proc.wait(10)
    third = dev_factory(home=home)
    third.says("Project", "a new dev to register")
    assert third.proc.poll() is None, third.stderr()


def test_a_dev_of_another_directory_with_the_same_ref_is_told_to_rename_not_to_stop(
        running: DaemonProcess, tmp_path: Path, dev_factory: DevFactory) -> None:
    """Two directories whose trigger.toml name the same project (a copied template, or two
    folders of the same name with no `project`) are two projects to their user. The lock of
    one `dev` per project told the second to stop the first ("Stop it (Ctrl-C there)");
    before the lock the daemon's 409 said to give one of them its own ref, which is the fix."""
    home = running.home
    first = dev_factory(home=home)
    first.says("Project", "the first dev to register")
    other = write_project(tmp_path / "other", SLOW_IMPORT)
    env = {**os.environ, "TRIGGER_LOCAL_HOME": str(home),
           "IMPORT_MARKER": str(tmp_path / "other-imported")}
    env.pop("TRIGGER_API_URL", None)
    env.pop("TRIGGER_SECRET_KEY", None)
    second = subprocess.run([sys.executable, "-m", "trigger_local", "dev"], cwd=other,
                            env=env, capture_output=True, text=True, timeout=30)
    assert second.returncode == 1, second.stderr
    said = " ".join(second.stderr.split())
    assert said.startswith(f"Error: Project proj_test is served by `trigger-local dev` in "
                           f"{first.project}"), said
    assert f"{other} has the same project ref. Give one of them its own `project = " \
           "\"...\"` in trigger.toml." in said, said
    assert "Ctrl-C" not in said, said
    assert first.proc.poll() is None, first.stderr()


def test_a_home_that_cannot_hold_the_dev_lock_is_said_and_dev_goes_on(
        running: DaemonProcess, dev_factory: DevFactory) -> None:
    """A home whose disk is full (no inode left for `<home>/dev`, while the daemon's database
    files still take writes), or whose `dev` cannot be made, gave no lock, in silence: a second
    dev of the project then ran beside the first (seen on a tmpfs out of inodes). dev says it
    has no lock, and why, once the daemon answers, and serves the project all the same. Here
    `<home>/dev` is a file, so that it cannot be made."""
    home = running.home
    (home / "dev").write_text("not a directory")
    first = dev_factory(home=home)
    first.says("Project", "dev to register")
    said = " ".join(first.stderr().split())
    assert f"No lock of one dev per project ({home / 'dev' / 'proj_test.lock'}: " in said, said
    assert "a second `trigger-local dev` of proj_test would run beside this one." in said
    assert "Registered" in said and first.proc.poll() is None, said


def test_two_devs_of_one_project_key_in_two_directories_are_one_dev_of_it(
        tmp_path: Path) -> None:
    """A directory whose trigger.toml names no project registers as the project of the key
    dev is given (TRIGGER_SECRET_KEY a project's key). The lock of one dev per project was named
    after the ref the directory's name derives, so two such devs in two directories both ran
    (the daemon's 409 comes only once a dev's session is open, after its first registration),
    both registering that project's version on every change. The second now exits 1 naming the
    first, having registered nothing, even while the first is still in its first registration;
    a dev with the daemon's own key in the second directory serves its own project."""
    home = tmp_path / "home"
    running = DaemonProcess(home, env={"TRIGGER_LOCAL_HOME": str(home)}).start()
    devs: list[subprocess.Popen[str]] = []

    def start_dev(cwd: Path, env: dict[str, str], log: Path) -> subprocess.Popen[str]:
        with log.open("w") as sink:
            devs.append(subprocess.Popen([sys.executable, "-m", "trigger_local", "dev"],
                                         cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                                         stderr=sink, text=True))
        return devs[-1]

    try:
        first_dir, second_dir = (write_project(tmp_path / name, SLOW_IMPORT)
                                 for name in ("first", "second"))
        for d in (first_dir, second_dir):  # no `project`: refs proj_first, proj_second
            (d / "trigger.toml").write_text('dirs = ["trigger"]\n')
        r = running.api("POST", "/api/v1/local/versions", json={
            "projectDir": str(first_dir), "dirs": ["trigger"],
            "env": {"IMPORT_MARKER": str(tmp_path / "registered")}})
        assert r.status_code == 200 and r.json()["project"] == "proj_first", r.text
        env = {**os.environ, "TRIGGER_LOCAL_HOME": str(home),
               "TRIGGER_SECRET_KEY": project_key(running.key, "proj_first"),
               "IMPORT_MARKER": str(tmp_path / "first-imported"), "IMPORT_SECONDS": "20"}
        env.pop("TRIGGER_API_URL", None)
        first = start_dev(first_dir, env, tmp_path / "first-dev.log")
        wait_for(lambda: (tmp_path / "first-imported").exists() or first.poll() is not None, 60,
                 what="the first dev to be inside its first registration")
        env.update({"IMPORT_MARKER": str(tmp_path / "second-imported"), "IMPORT_SECONDS": "0"})
        log = tmp_path / "second-dev.log"
        second = start_dev(second_dir, env, log)
        wait_for(lambda: second.poll() is not None or "Project" in log.read_text(), 60,
                 what="the second dev to end or to serve")
        said = " ".join(log.read_text().split())
        assert second.wait(10) == 1, said
        # the key's project is the daemon's answer: dev says which daemon it uses first
        assert said.startswith("Using the daemon at "), said
        assert said.endswith(
            f"Error: Project proj_first is served by `trigger-local dev` in {first_dir} (pid "
            f"{first.pid}); TRIGGER_SECRET_KEY here in {second_dir} is that project's key "
            "too. Stop that dev (Ctrl-C there), or use another project's key here."), said
        assert not (tmp_path / "second-imported").exists()  # it registered nothing
        assert first.poll() is None, (tmp_path / "first-dev.log").read_text()
        # the daemon's own key: the second directory is its own project, and its dev runs
        env.pop("TRIGGER_SECRET_KEY")
        own_log = tmp_path / "own-dev.log"
        own = start_dev(second_dir, env, own_log)
        wait_for(lambda: "Project" in own_log.read_text() or own.poll() is not None, 60,
                 what="the second directory's own dev to register")
        assert own.poll() is None and "proj_second" in own_log.read_text(), own_log.read_text()
    finally:
        for dev in devs:
            dev.kill()
            dev.wait(10)
        running.close()
