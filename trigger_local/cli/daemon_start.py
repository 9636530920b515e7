"""Starting the daemon detached (`up --detach`, `dev`), and a daemon that `dev` owns.

A daemon that `dev` started is stopped when `dev` ends, however it ends: Ctrl-C, SIGTERM or
SIGHUP at any moment — before the daemon answers, while registering, while streaming. Its pid is
recorded with the signals held back, so no signal can fall between the spawn and the record."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import httpx

from ..config import DaemonSettings
from ..disk import full_disk_at
from ..home import open_private
from ..sdk.client import configure, read_daemon_info
from .common import fail

START_TIMEOUT_S = 30.0
#: the signals that end `dev`; each stops the daemon it started
ENDING_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def answering(url: str, timeout_s: float = 1.0) -> bool:
    """A daemon answers /healthz at `url`: 200, or 503 while one of its loops is failing (it
    runs, and says what is wrong)."""
    try:
        return httpx.get(f"{url.rstrip('/')}/healthz", timeout=timeout_s).status_code in (200, 503)
    except httpx.HTTPError:
        return False


def running_daemon(home: Path) -> dict[str, Any] | None:
    """daemon.json of a daemon that answers, or None."""
    info = read_daemon_info(home)
    if info and info.get("url") and answering(str(info["url"])):
        return info
    return None


def pid_is_ours(pid: int) -> bool:
    """Alive, and (where /proc tells) a trigger-local process, not a recycled pid."""
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    cmdline = Path(f"/proc/{pid}/cmdline")
    if cmdline.exists():
        return b"trigger" in cmdline.read_bytes()
    return True


class Spawned:
    """A daemon process just spawned, and where its log stood when it was."""

    def __init__(self, proc: subprocess.Popen[bytes], log_path: Path, log_offset: int) -> None:
        self.proc, self.log_path, self.log_offset = proc, log_path, log_offset

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _written(self) -> tuple[str, list[str]]:
        """What this daemon wrote to the log (never earlier runs' lines), and its `error:` lines."""
        try:
            with self.log_path.open("rb") as fh:
                fh.seek(self.log_offset)
                written = fh.read().decode(errors="replace")
        except OSError:
            written = ""
        return written, [line.removeprefix("error: ") for line in written.splitlines()
                         if line.startswith("error: ")]

    def exit_reason(self) -> str | None:
        """None while this daemon runs; once it exited, why: its own `error:` lines, else its
        exit code and where its log is (a daemon that stopped itself, or was killed)."""
        code = self.proc.poll()
        if code is None:
            return None
        errors = self._written()[1] or (self._disk_full() if code > 0 else [])
        how = (f"was killed by signal {-code}" if code < 0 else
               "was stopped (`trigger-local down`, or a SIGTERM or SIGINT sent to it)"
               if code == 0 else f"exited with code {code}")
        return "\n".join(errors) if errors else f"It {how}; its log is {self.log_path}."

    def _disk_full(self) -> list[str]:
        """The daemon's line when its home's disk is full: the log it would have said so in
        could not take the line (on a full disk, a detached start said only "wrote nothing")."""
        full = full_disk_at(self.log_path.parent.parent)  # <home>/logs/daemon.log
        return [full.message] if full is not None else []

    def start_failure(self) -> str:
        """What this start wrote to the log (never earlier runs' lines): the daemon's own error
        paragraph, the same text a foreground `up` prints, else the tail of what it wrote."""
        written, errors = self._written()
        errors = errors or ([] if written.strip() else self._disk_full())
        if errors:
            return "\n".join(errors)
        tail = "\n".join(written.strip().splitlines()[-20:])
        return (f"The daemon exited at start (code {self.proc.returncode}). Its log, "
                f"{self.log_path}, ends with:\n{tail}" if tail else
                f"The daemon exited at start (code {self.proc.returncode}) and wrote nothing to "
                f"{self.log_path}.")


def spawn(settings: DaemonSettings) -> Spawned:
    """Spawn the daemon in its own session (a Ctrl-C in this terminal does not reach it)."""
    logs = settings.home / "logs"
    log_path = logs / "daemon.log"
    argv = [sys.executable, "-m", "trigger_local.daemon", "--home", str(settings.home),
            "--host", settings.host, "--port", str(settings.port), "--executor", settings.executor]
    env = {**os.environ, "TRIGGER_LOCAL_HOME": str(settings.home)}
    if settings.database_url:  # through the environment: a password in argv shows in `ps`
        env["TRIGGER_LOCAL_DATABASE_URL"] = settings.database_url
    try:
        # private from the start (home.py)
        settings.home.mkdir(mode=0o700, parents=True, exist_ok=True)
        logs.mkdir(mode=0o700, exist_ok=True)
        log = open_private(log_path)
    except OSError as exc:
        fail(f"Cannot use {settings.home} as the daemon's home: {exc.strerror or exc}. Point "
             "TRIGGER_LOCAL_HOME at a directory you own.")
    with log:
        offset = log.seek(0, os.SEEK_END)
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, env=env, start_new_session=True)
    return Spawned(proc, log_path, offset)


def wait_answering(settings: DaemonSettings, spawned: Spawned) -> str:
    """Wait until the spawned daemon answers /healthz: its url. A daemon that exits at start
    fails with its own error paragraph."""
    proc = spawned.proc
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            fail(spawned.start_failure())
        # daemon.json names the real address (with --port 0 only the daemon knows it).
        info = read_daemon_info(settings.home)
        if info and info.get("pid") == proc.pid and answering(str(info.get("url")), timeout_s=0.5):
            configure()  # the shared clients may have looked for a daemon before it existed
            return str(info["url"])
        time.sleep(0.1)
    fail(f"The daemon (pid {proc.pid}) did not answer within {START_TIMEOUT_S:.0f}s. "
         f"Look at {spawned.log_path}, then stop it with `trigger-local down`.")


def start_detached(settings: DaemonSettings) -> tuple[str, int]:
    """Spawn the daemon and wait until it answers: (url, pid)."""
    spawned = spawn(settings)
    return wait_answering(settings, spawned), spawned.pid


class _Deferral:
    """Whether an ending signal is held back now, and the one that came meanwhile."""

    holding = False
    pending: int | None = None


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Hold the ending signals for the block (after `end_on_signals`): one that arrives
    meanwhile ends the command when the block is done, so the block is never cut in half.
    Held in Python, not with the signal mask: a process spawned in the block would inherit a
    blocked mask, and a daemon that cannot get SIGTERM cannot be stopped."""
    _Deferral.holding, _Deferral.pending = True, None
    try:
        yield
    finally:
        _Deferral.holding = False
        if _Deferral.pending is not None:
            raise KeyboardInterrupt(signal.Signals(_Deferral.pending).name)


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    if _Deferral.holding:
        _Deferral.pending = signum
        return
    raise KeyboardInterrupt(signal.Signals(signum).name)


def end_on_signals() -> None:
    """SIGTERM and SIGHUP end this command the way Ctrl-C does (its cleanup runs)."""
    for sig in ENDING_SIGNALS:
        signal.signal(sig, _interrupt)


def ignore_signals() -> None:
    """While cleaning up: a second Ctrl-C must not cut the cleanup short."""
    for sig in ENDING_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)


def stop_pid(pid: int, timeout_s: float, sig: int = signal.SIGTERM) -> bool:
    """Signal `pid` (SIGTERM) and wait for it to exit; False if it is still alive after
    `timeout_s`. A pid that is already gone is stopped."""
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return True
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not pid_is_ours(pid):
            return True
        time.sleep(0.1)
    return False


def stop_spawned(spawned: Spawned, timeout_s: float) -> bool:
    """Stop a daemon this command spawned and reap it (no zombie is left to look alive). False
    if it had already exited."""
    if spawned.proc.poll() is not None:
        return False
    with contextlib.suppress(ProcessLookupError):
        spawned.proc.send_signal(signal.SIGTERM)
    try:
        spawned.proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        spawned.proc.kill()
        spawned.proc.wait(5)
    return True
