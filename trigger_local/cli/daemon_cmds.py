"""`up`, `down` and `status`: starting, stopping and looking at the daemon.

The daemon itself lives in `trigger_local.daemon` (`serve(settings)` in the foreground,
`python -m trigger_local.daemon ...` detached); here we only spawn, signal and ask it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import typer

from ..config import DaemonSettings
from ..home import open_private
from ..sdk.client import configure, read_daemon_info
from .common import JSON_OPTION, client, emit_json, err, fail, out
from .render import fmt_time

START_TIMEOUT_S = 30.0
EXECUTORS = ("process", "docker")


def healthy(url: str, timeout_s: float = 1.0) -> bool:
    try:
        return httpx.get(f"{url.rstrip('/')}/healthz", timeout=timeout_s).status_code == 200
    except httpx.HTTPError:
        return False


def running_daemon(home: Path) -> dict[str, Any] | None:
    """daemon.json of a daemon that answers, or None."""
    info = read_daemon_info(home)
    if info and info.get("url") and healthy(str(info["url"])):
        return info
    return None


def settings_for(home: Path | None = None, port: int | None = None, host: str | None = None,
                 executor: str | None = None) -> DaemonSettings:
    if executor is not None and executor not in EXECUTORS:
        fail(f"Unknown executor {executor!r}: use one of {', '.join(EXECUTORS)}.")
    if home is not None:
        # So this process's client (and the daemon we spawn) agree on the home.
        os.environ["TRIGGER_LOCAL_HOME"] = str(home.expanduser().resolve())
    return DaemonSettings.from_env(home=home, port=port, host=host, executor=executor)


def _log_tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def start_detached(settings: DaemonSettings) -> tuple[str, int]:
    """Spawn the daemon in its own session and wait until /healthz answers: (url, pid)."""
    logs = settings.home / "logs"
    log_path = logs / "daemon.log"
    argv = [sys.executable, "-m", "trigger_local.daemon", "--home", str(settings.home),
            "--host", settings.host, "--port", str(settings.port), "--executor", settings.executor]
    env = {**os.environ, "TRIGGER_LOCAL_HOME": str(settings.home)}
    try:
        settings.home.mkdir(mode=0o700, parents=True, exist_ok=True)  # private from the start (home.py)
        logs.mkdir(mode=0o700, exist_ok=True)
        log = open_private(log_path)
    except OSError as exc:
        fail(f"Cannot use {settings.home} as the daemon's home: {exc.strerror or exc}. Point "
             "TRIGGER_LOCAL_HOME at a directory you own.")
    with log:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                env=env, start_new_session=True)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            fail(f"The daemon exited at start (code {proc.returncode}). Its log, {log_path}, ends with:"
                 f"\n{_log_tail(log_path)}")
        # daemon.json names the real address (with --port 0 only the daemon knows it).
        info = read_daemon_info(settings.home)
        if info and info.get("pid") == proc.pid and healthy(str(info.get("url")), timeout_s=0.5):
            configure()  # the shared clients may have looked for a daemon before it existed
            return str(info["url"]), proc.pid
        time.sleep(0.1)
    fail(f"The daemon (pid {proc.pid}) did not answer within {START_TIMEOUT_S:.0f}s. "
         f"Look at {log_path}, then stop it with `trigger-local down`.")


def up(
    port: int | None = typer.Option(None, "--port", help="Port to listen on (default: 8030)."),
    host: str | None = typer.Option(None, "--host", help="Address to bind (default: 127.0.0.1)."),
    executor: str | None = typer.Option(None, "--executor", help="process (default) or docker."),
    detach: bool = typer.Option(False, "--detach", "-d", help="Run in the background."),
    home: Path | None = typer.Option(None, "--home", help="Daemon home (default: ~/.trigger-local)."),
) -> None:
    """Start the daemon (in the foreground unless --detach)."""
    settings = settings_for(home, port, host, executor)
    info = running_daemon(settings.home)
    if info:
        err().print(f"The daemon is already running at {info['url']} (pid {info.get('pid')}). "
                    "Stop it with `trigger-local down`.")
        raise typer.Exit(0 if detach else 1)
    if detach:
        url, pid = start_detached(settings)
        err().print(f"Daemon started (pid {pid}), logs in {settings.home / 'logs' / 'daemon.log'}")
        out().print(url)
        return
    from .. import daemon  # the daemon's dependencies load only when we really serve

    daemon.serve(settings)


def _pid_is_ours(pid: int) -> bool:
    """Alive, and (where /proc tells) a trigger-local process, not a recycled pid."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False
    cmdline = Path(f"/proc/{pid}/cmdline")
    if cmdline.exists():
        return b"trigger" in cmdline.read_bytes()
    return True


def stop_pid(pid: int, timeout_s: float) -> bool:
    """SIGTERM `pid` and wait for it to exit; False if it is still alive after `timeout_s`."""
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not _pid_is_ours(pid):
            return True
        time.sleep(0.1)
    return False


def down(
    home: Path | None = typer.Option(None, "--home", help="Daemon home (default: ~/.trigger-local)."),
) -> None:
    """Stop the running daemon (SIGTERM, then wait for it to exit)."""
    settings = settings_for(home)
    info = read_daemon_info(settings.home)
    pid = int(info.get("pid") or 0) if info else 0
    if not pid or not _pid_is_ours(pid):
        err().print(f"No daemon is running (home {settings.home}).")
        return
    if not stop_pid(pid, settings.shutdown_grace_s + 15):
        fail(f"The daemon (pid {pid}) is still running after SIGTERM; stop it with `kill -9 {pid}`.")
    err().print(f"Daemon stopped (pid {pid}).")


def status(
    json_output: bool = JSON_OPTION,
) -> None:
    """Is the daemon running? Its address, pid, version, executor and run counts."""
    answer = client().status()  # DaemonNotRunningError -> exit 1 with how to start it
    info = read_daemon_info() or {}
    document = {**info, **answer}
    if json_output:
        emit_json(document)
        return
    console = out()
    console.print(f"[green]running[/green] at {document.get('url', client().endpoint.base_url)}")
    for key, value in document.items():
        if key in ("url", "runs") or value in (None, "", [], {}):
            continue
        console.print(f"  {key.replace('_', ' '):<16} {_show_value(key, value)}", markup=False)
    counts = document.get("runs")
    if isinstance(counts, dict):
        shown = "  ".join(f"{k}={v}" for k, v in counts.items()) or "none yet"
        console.print(f"  {'runs':<16} {shown}", markup=False)


def _show_value(key: str, value: Any) -> str:
    if key.endswith("_at") and isinstance(value, int | float):
        return fmt_time(value)
    if isinstance(value, list):
        return ", ".join(map(str, value))
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    return str(value)
