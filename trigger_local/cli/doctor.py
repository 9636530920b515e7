"""`trigger-local doctor`: is this machine ready? One line per check, with the fix.

Docker and CRIU are optional (the process executor needs neither; without CRIU waiting runs
are held instead of checkpointed), so their absence is a warning, never a failure."""

from __future__ import annotations

import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.text import Text

from ..config import DaemonSettings, database_url_problem, ignored_variables
from ..errors import ValidationError
from ..settings_checks import check_task_env
from .common import JSON_OPTION, emit_json, out
from .daemon_cmds import EXECUTORS, running_daemon
from .doctor_criu import SETUP_FIX, checkpoint_check

if TYPE_CHECKING:
    import docker

MIN_PYTHON = (3, 11)
DOCKER_FIX = ("Only the docker executor needs it: run `sudo bash scripts/setup-docker.sh` "
              "(installs docker.io, starts `dockerd --experimental`, builds the base image), or "
              "start the engine: `dockerd --experimental &`.")
MARKS = {"ok": ("ok", "green"), "warn": ("warn", "yellow"), "fail": ("FAIL", "red")}


@dataclass
class Check:
    name: str
    level: str  # ok | warn | fail
    detail: str
    fix: str = ""
    #: a tool's own words behind `detail` (CRIU's output): shown with --verbose
    more: str = ""


def check_python() -> Check:
    version = ".".join(map(str, sys.version_info[:3]))
    if sys.version_info[:2] < MIN_PYTHON:  # an old interpreter can still run this file
        return Check("Python", "fail", version, "Use Python 3.11 or newer.")
    return Check("Python", "ok", f"{version} ({sys.executable})")


def check_sqlite(home: Path) -> Check:
    version = sqlite3.sqlite_version
    try:
        directory = home if home.is_dir() else Path(tempfile.gettempdir())
        with tempfile.NamedTemporaryFile(dir=directory, suffix=".db") as fh:
            conn = sqlite3.connect(fh.name)
            try:
                mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            finally:
                conn.close()
    except (OSError, sqlite3.Error) as exc:
        return Check("SQLite", "fail", f"{version}: {exc}",
                     "Check the home directory's file system.")
    if str(mode).lower() != "wal":
        return Check("SQLite", "fail", f"{version}, WAL unavailable (journal_mode={mode})",
                     "Put TRIGGER_LOCAL_HOME on a local disk (WAL does not work on network file "
                     "systems).")
    if sqlite3.sqlite_version_info < (3, 35):
        return Check("SQLite", "warn", f"{version} with WAL", "SQLite 3.35+ is recommended.")
    return Check("SQLite", "ok", f"{version} with WAL")


def check_home(home: Path) -> Check:
    try:
        home.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=home):
            pass
    except OSError as exc:
        return Check("Home", "fail", f"{home}: {exc.strerror}",
                     "Make it writable, or point TRIGGER_LOCAL_HOME at a writable directory.")
    return Check("Home", "ok", f"{home} is writable")


def check_port(settings: DaemonSettings) -> Check:
    info = running_daemon(settings.home)
    if info:
        return Check("Port", "ok", f"in use by our daemon at {info['url']} (pid {info.get('pid')})")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((settings.host, settings.port))
        except OverflowError:
            return Check("Port", "fail", f"{settings.port} is not a port (0 to 65535)",
                         "Set TRIGGER_LOCAL_PORT (or `up --port N`) to a number from 1 to "
                         "65535.")
        except OSError:
            return Check("Port", "fail",
                         f"{settings.host}:{settings.port} is taken by another program",
                         "Stop that program, or use `trigger-local up --port N`.")
    return Check("Port", "ok", f"{settings.host}:{settings.port} is free")


def _docker_socket_error() -> str | None:
    """Why the engine's unix socket does not answer, or None (also for tcp:// hosts)."""
    host = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    if not host.startswith("unix://"):
        return None
    path = host.removeprefix("unix://")
    # Asked first ourselves: the docker SDK leaks its socket when the engine is not there.
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(2)
        try:
            sock.connect(path)
        except OSError as exc:
            return f"no engine at {path}: {exc.strerror or exc}"
    return None


def check_docker() -> Check:
    reason = _docker_socket_error()
    if reason:
        return Check("Docker", "warn", reason, DOCKER_FIX)
    try:
        import docker  # heavy; only the doctor and the docker executor need it
        from docker.utils import kwargs_from_env

        # A fixed API version: "auto" would probe in the constructor and leak its socket.
        # 1.41: Debian 12's engine; newer engines accept it too.
        engine = docker.APIClient(version="1.41", timeout=3, **kwargs_from_env())
    except Exception as exc:  # bad DOCKER_HOST and the like
        return _docker_missing(exc)
    try:
        version = engine.version(api_version=False).get("Version", "?")
        experimental = bool(engine.info().get("ExperimentalBuild"))
        base = _has_image(engine, "trigger-local-base:bookworm")
    except Exception as exc:  # the SDK raises many kinds; any of them means "not usable"
        return _docker_missing(exc)
    finally:
        engine.close()
    if not base:
        return Check("Docker", "warn",
                     f"engine {version}, but no base image trigger-local-base:bookworm",
                     "`trigger-local deploy` needs it (or [build].base_image): run `bash "
                     "scripts/make-base-image.sh`.")
    if not experimental:
        return Check("Docker", "warn",
                     f"engine {version} without --experimental: no `docker checkpoint`",
                     "Restart the engine as `dockerd --experimental`.")
    return Check("Docker", "ok", f"engine {version}, experimental, base image present")


def _has_image(engine: docker.APIClient, name: str) -> bool:
    try:
        engine.inspect_image(name)
    except Exception:  # docker.errors.ImageNotFound, imported lazily
        return False
    return True


def _docker_missing(exc: Exception) -> Check:
    return Check("Docker", "warn", f"engine not reachable ({type(exc).__name__})", DOCKER_FIX)


def check_executor(settings: DaemonSettings) -> Check | None:
    """What the running daemon's executor says about itself (only when it is the docker one:
    then a missing engine is not optional, and runs wait for it)."""
    info = running_daemon(settings.home)
    if not info or info.get("executor") != "docker":
        return None
    try:
        from ..sdk.client import get_sync_client

        executor = get_sync_client().status().get("executor") or {}
    except Exception as exc:  # the daemon went away meanwhile, or refused our key
        return Check("Executor", "warn",
                     f"docker; the daemon did not answer ({type(exc).__name__})")
    if executor.get("problem"):
        return Check("Executor", "fail",
                     f"docker: {executor['problem']}; runs stay queued until it is back",
                     DOCKER_FIX)
    return Check("Executor", "ok", f"docker, {executor.get('containers', 0)} container(s) running")


def check_criu() -> Check:
    path = shutil.which("criu")
    if path is None:
        return Check("CRIU", "warn", "not installed; waiting runs are held, not checkpointed",
                     SETUP_FIX)
    try:
        done = subprocess.run([path, "check"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Check("CRIU", "warn", f"`criu check` did not run: {exc}",
                     "Run `sudo criu check` yourself.")
    if done.returncode == 0:
        # not criu's last line: its warnings ("Can't check shutdown state of inet socket")
        # come on stderr, after or before "Looks good."
        return Check("CRIU", "ok", f"`criu check` passed{_criu_version(path)}")
    said = "\n".join(line.rstrip() for line in (done.stdout + done.stderr).splitlines()
                     if line.strip())
    # CRIU's words are hundreds of characters of its internals: with --verbose only
    return Check("CRIU", "warn", f"`criu check` failed{_criu_version(path)}",
                 "CRIU needs root and a recent version (4.x on kernels 6.x). " + SETUP_FIX,
                 more=said or f"exit code {done.returncode}, no output")


def _criu_version(path: str) -> str:
    """` (CRIU 4.1.1)`, or "" when `criu --version` says nothing usable."""
    try:
        done = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    found = re.search(r"Version:\s*(\S+)", done.stdout)
    return f" (CRIU {found.group(1)})" if found else ""


def run_checks(settings: DaemonSettings) -> list[Check]:
    checks = [check_python(), check_sqlite(settings.home), check_home(settings.home),
              check_port(settings), check_docker(), check_criu()]
    checkpoints = checkpoint_check(settings)
    if checkpoints is not None:
        checks.append(Check("Checkpoints", *checkpoints))
    if settings.database_url:
        checks.append(check_database(settings.database_url))
    if settings.executor not in EXECUTORS:  # `up` refuses it: doctor said all was well
        checks.append(Check("Executor", "fail",
                            f"TRIGGER_LOCAL_EXECUTOR={settings.executor!r} is not an executor",
                            f"Set it to {' or '.join(EXECUTORS)}, or unset it for process."))
    try:  # `up` refuses these (the task processes' own settings)
        check_task_env(os.environ)
    except ValidationError as exc:
        checks.append(Check("Task processes", "fail", exc.message,
                            "Set it to a value docs/configuration.md shows, or unset it."))
    for line in ignored_variables(os.environ):
        checks.append(Check("Settings", "warn", line, "Correct its name, or unset it."))
    executor = check_executor(settings)
    return checks + ([executor] if executor else [])


def check_database(url: str) -> Check:
    """With `database_url`: can we connect, and is the schema this version's."""
    from ..database_admin import check_postgres  # the driver loads only when it is needed

    problem = database_url_problem(url)  # as `up` and `migrate` say it, not a driver's DSN error
    if problem:
        return Check("Database", "fail", problem,
                     "Set TRIGGER_LOCAL_DATABASE_URL to a postgresql:// URL, or unset it.")

    return Check("Database", *check_postgres(url))


def doctor(json_output: bool = JSON_OPTION,
           verbose: bool = typer.Option(False, "--verbose", "-v",
                                        help="Also show what CRIU itself said.")) -> None:
    """Check Python, the database (SQLite or PostgreSQL), the home, the port, Docker and CRIU.

    With $TRIGGER_LOCAL_DATABASE_URL set, the database checked is that PostgreSQL database."""
    checks = run_checks(DaemonSettings.from_env())
    failed = any(c.level == "fail" for c in checks)
    if json_output:
        emit_json({"ok": not failed, "checks": [asdict(c) for c in checks]})
    else:
        console = out()
        width = max(len(c.name) for c in checks) + 1  # "Checkpoints" is longer than the rest
        for check in checks:
            label, style = MARKS[check.level]
            line = Text.assemble((f"{label:<5}", style), f"{check.name:<{width}}", check.detail)
            if check.fix:
                line.append(f"\n{'':{5 + width}}→ {check.fix}", style="dim")
            if verbose and check.more:
                for said in check.more.splitlines():
                    line.append(f"\n{'':{5 + width}}| {said}", style="dim")
            console.print(line)
    if failed:
        raise typer.Exit(1)
