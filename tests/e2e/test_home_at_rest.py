"""The daemon's home at rest, against real daemon processes: private modes (and old ones fixed
at start), task processes keeping the user's umask, a damaged or missing database stopping the
start with one paragraph, and every start-up error being one line without a traceback, from
the daemon itself and from `trigger-local up` / `up --detach`."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx

from .conftest import DaemonProcess, daemon_pids, wait_for, write_project

UMASK_TASK = '''
import os, tempfile
from trigger_local import task

@task(id="write-file")
def write_file(payload, ctx):
    path = os.path.join(payload["dir"], "made-by-task.txt")
    with open(path, "w") as fh:
        fh.write("x")
    return {"mode": os.stat(path).st_mode & 0o777}
'''


def _modes(home: Path) -> dict[str, int]:
    out = {}
    for root, dirs, files in os.walk(home):
        for name in [*dirs, *files]:
            path = Path(root) / name
            if not path.is_symlink():
                out[str(path.relative_to(home))] = stat.S_IMODE(path.lstat().st_mode)
    return out


def _not_private(home: Path) -> dict[str, str]:
    modes = {".": stat.S_IMODE(home.stat().st_mode), **_modes(home)}
    return {name: oct(mode) for name, mode in modes.items() if mode & 0o077}


def test_the_home_and_every_file_in_it_are_private(daemon: DaemonProcess, tmp_path: Path) -> None:
    d = daemon
    d.register(write_project(tmp_path / "project", UMASK_TASK))
    out = tmp_path / "out"
    out.mkdir()
    run = d.wait_status(d.trigger("write-file", {"dir": str(out)}))
    packet = d.api("PUT", "/api/v2/packets/run_1%2Fpayload.json").json()
    assert httpx.put(packet["presignedUrl"], content=b"{}").status_code == 200
    d.api("POST", "/api/v1/projects/proj_test/envvars/dev",
          json={"name": "SECRET", "value": "hunter2"})
    written = _modes(d.home)
    assert {"trigger-local.db", "trigger-local.db-wal", "secret_key", "daemon.json",
            "database.json", "packets/run_1/payload.json"} <= set(written)
    assert any(name.startswith("logs/") and name.endswith(".log") for name in written), written
    assert _not_private(d.home) == {}
    # the task's own files follow the user's umask, not the daemon's
    umask = os.umask(0o022)
    os.umask(umask)
    assert run["output"]["mode"] == 0o666 & ~umask


def test_modes_left_open_by_an_older_version_are_fixed_at_start(daemon: DaemonProcess) -> None:
    d = daemon
    d.stop()
    (d.home / "packets" / "old").mkdir(parents=True)
    (d.home / "packets" / "old" / "p.json").write_text("{}")
    for path in [d.home, *d.home.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    opened = len(_modes(d.home)) + 1
    d.start()
    assert _not_private(d.home) == {}
    said = [line for line in d.log_text().splitlines() if "made the home private" in line][-1]
    assert f"fixed={opened}" in said, said  # every file and directory, and the home itself


def _start(home: Path, *args: str, env: dict[str, str] | None = None,
           module: str = "trigger_local.daemon") -> subprocess.CompletedProcess[str]:
    """A start that is expected to fail: the daemon must exit by itself."""
    full_env = {**os.environ, "TRIGGER_LOCAL_HOME": str(home), **(env or {})}
    full_env.pop("TRIGGER_API_URL", None)
    full_env.pop("TRIGGER_SECRET_KEY", None)
    argv = [sys.executable, "-m", module, *args]
    if module == "trigger_local.daemon":
        argv += (["--home", str(home), "--port", "0"] if "--port" not in args
                 else ["--home", str(home)])
    return subprocess.run(argv, capture_output=True, text=True, env=full_env, timeout=60)


def _one_line_error(r: subprocess.CompletedProcess[str], *words: str) -> None:
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr + r.stdout, r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, r.stderr
    for word in words:
        assert word in r.stderr, (word, r.stderr)


def _with_runs(d: DaemonProcess) -> Path:
    """A good database with some rows, its daemon stopped; returns a copy of it."""
    for n in range(20):
        d.trigger("not-indexed", {"n": n})
    d.stop()
    good = d.home.parent / "good.db"
    shutil.copy(d.home / "trigger-local.db", good)
    return good


def _zero_header(db: Path) -> None:
    with db.open("r+b") as fh:
        fh.write(b"\0" * 100)


def _truncate(db: Path) -> None:
    os.truncate(db, db.stat().st_size // 3 + 100)


def _empty(db: Path) -> None:
    os.truncate(db, 0)


def _break_runs_table(db: Path) -> None:
    with sqlite3.connect(db) as conn:
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'runs'").fetchone()[0]
    with db.open("r+b") as fh:  # the b-tree page header of the runs table
        fh.seek((root - 1) * page_size)
        fh.write(b"\0" * 16)


def test_a_damaged_database_stops_the_start_with_one_paragraph(daemon: DaemonProcess) -> None:
    d = daemon
    good = _with_runs(d)
    db = d.home / "trigger-local.db"
    breaks: list[Callable[[Path], None]] = [_zero_header, _truncate, _empty, _break_runs_table]
    for damage in breaks:
        shutil.copy(good, db)
        damage(db)
        r = _start(d.home)
        _one_line_error(r, "is damaged", str(db), "restore", "mv ", "database.json")
    # the same through the CLI: in the foreground, and detached
    r = _start(d.home, "up", "--port", "0", module="trigger_local")
    _one_line_error(r, "is damaged")
    r = _start(d.home, "up", "--detach", "--port", "0", module="trigger_local")
    assert r.returncode == 1 and "Traceback" not in r.stderr and "is damaged" in r.stderr, r.stderr
    shutil.copy(good, db)  # restored from the backup: it starts, with its runs
    d.start()
    assert len(d.api("GET", "/api/v1/runs").json()["data"]) == 20


def test_a_database_that_disappeared_is_reported_not_replaced(daemon: DaemonProcess) -> None:
    d = daemon
    d.trigger("not-indexed", {})
    d.stop()
    for name in ("trigger-local.db", "trigger-local.db-wal", "trigger-local.db-shm"):
        (d.home / name).unlink(missing_ok=True)
    r = _start(d.home)
    _one_line_error(r, "is missing", str(d.home / "database.json"), "delete")
    assert not (d.home / "trigger-local.db").exists(), "no empty database was made"
    (d.home / "database.json").unlink()  # starting anew, on purpose
    d.start()
    assert d.api("GET", "/api/v1/runs").json()["data"] == []


def test_the_quick_check_is_bounded_in_time(daemon: DaemonProcess) -> None:
    d = daemon
    _with_runs(d)
    with sqlite3.connect(d.home / "trigger-local.db") as db:  # a database with some weight
        db.executemany("INSERT INTO logs (run_id, at, level, message) VALUES ('run_x', 0, 'info', "
                       "?)",
                       [(f"line {n} " + "x" * 200,) for n in range(20_000)])
    d.env["TRIGGER_LOCAL_DB_CHECK_S"] = "0.001"
    d.start()
    assert "database check ran out of time" in d.log_text()
    assert d.api("GET", "/api/v1/runs").status_code == 200


def test_start_up_errors_are_one_line_without_a_traceback(tmp_path: Path) -> None:
    home = tmp_path / "home"
    a_file = tmp_path / "not-a-dir"
    a_file.write_text("x")
    cases: list[tuple[list[str], dict[str, str], Path, str]] = [
        (["--port", "99999"], {}, home, "65535"),
        ([], {"TRIGGER_LOCAL_CONCURRENCY": "many"}, home, "TRIGGER_LOCAL_CONCURRENCY"),
        ([], {"TRIGGER_LOCAL_DB_CHECK_S": "soon"}, home, "TRIGGER_LOCAL_DB_CHECK_S"),
        ([], {"TRIGGER_LOCAL_CONCURRENCY": "-1"}, home, "at least 1"),
        ([], {"TRIGGER_LOCAL_SHUTDOWN_GRACE_S": "nan"}, home, "TRIGGER_LOCAL_SHUTDOWN_GRACE_S"),
        ([], {"TRIGGER_LOCAL_CHECKPOINTS": "maybe"}, home, "one of auto, off"),
        ([], {}, a_file, "not a directory"),
        (["--host", "999.0.0.1"], {}, home, "999.0.0.1"),
        # blank: the system binds every address (0.0.0.0), and daemon.json said "http://:PORT"
        ([], {"TRIGGER_LOCAL_HOST": ""}, home, "empty host"),
        (["--host", " "], {}, home, "empty host"),
    ]
    for args, env, where, word in cases:
        _one_line_error(_start(where, *args, env=env), word)
        r = _start(where, "up", *args, env={**env, "COLUMNS": "300"}, module="trigger_local")
        # the CLI checks a flag's range itself: a usage error (exit 2) naming the flag
        usage = args[:1] == ["--port"]
        shown = "'--port': must be from 0 to 65,535" if usage else word
        assert (r.returncode == (2 if usage else 1) and "Traceback" not in r.stderr
                and shown in r.stderr), (args, env, r.stderr)
    with socket_in_use() as port:
        _one_line_error(_start(home, "--port", str(port)), "uses that port")


class socket_in_use:  # noqa: N801 - used as a context manager
    def __enter__(self) -> int:
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        return int(self.sock.getsockname()[1])

    def __exit__(self, *exc: object) -> None:
        self.sock.close()


def test_a_running_daemon_keeps_its_files_private_when_dev_starts_it(tmp_path: Path) -> None:
    """`dev` starts the daemon detached: the home it makes, and the daemon's log, are private."""
    home = tmp_path / "home"
    project = write_project(tmp_path / "project")
    env = {**os.environ, "TRIGGER_LOCAL_HOME": str(home), "TRIGGER_LOCAL_PORT": "0"}
    env.pop("TRIGGER_API_URL", None)
    env.pop("TRIGGER_SECRET_KEY", None)
    dev = subprocess.Popen([sys.executable, "-m", "trigger_local", "dev"], cwd=project, env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: (home / "daemon.json").exists(), 60, what="dev to start a daemon")
        wait_for(lambda: (home / "logs" / "daemon.log").exists(), 10, what="the daemon log")
        assert _not_private(home) == {}
    finally:
        dev.send_signal(signal.SIGINT)
        dev.wait(60)
    # Ctrl-C stops the daemon dev started, even this early in dev's start (just after
    # daemon.json appears)
    assert daemon_pids(home) == {}
    assert "made the home private" not in (home / "logs" / "daemon.log").read_text()
