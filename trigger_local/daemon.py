"""The daemon process: `python -m trigger_local.daemon` (what `trigger-local up` starts
detached) and `serve(settings)` (in the foreground, `trigger-local dev`). It runs until SIGTERM
or SIGINT; daemon_core.py has the parts and the order of the shutdown.

One daemon per home: an exclusive lock on `<home>/daemon.lock` (daemon_lock.py) is taken before
the store opens and held until the process ends. Every background loop runs under the
supervisor (supervise.py): a failing round is retried with back-off, a loop that cannot recover
stops the daemon with exit code 1 and one line saying why, and /healthz answers 503 while a loop
is failing or not running.

This module imports little: the database check (bounded `PRAGMA quick_check`) starts on a
thread first, and the daemon's own modules and the API are imported meanwhile (issue #17:
with a million runs the check takes its whole second, and start-up must stay within 2 s).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sys
from typing import Any, NoReturn

import structlog

from .config import DaemonSettings, database_url_problem
from .daemon_lock import DaemonLock
from .disk import disk_full_error
from .errors import StartupError, TriggerLocalError
from .home import check_home_database, make_private, save_traceback, use_private_umask
from .logs import configure_logging
from .settings_checks import check_task_env

log = structlog.get_logger("daemon")


async def _main(settings: DaemonSettings) -> None:
    lock = DaemonLock.acquire(settings.home)  # before anything touches the home's files
    try:
        # holding the lock (no other daemon writes it meanwhile); SQLite lets go of the GIL
        # while it checks, so the daemon's and the API's modules are imported meanwhile (issue
        # #17). run_in_executor hands the check to its thread now; a task would only start it
        # at the loop's next turn, after the imports.
        checked = asyncio.get_running_loop().run_in_executor(None, check_home_database, settings)
        try:
            from .api import app  # noqa: F401 - run_daemon's import of it is then instant
            from .daemon_core import run_daemon
        finally:
            await checked
        await run_daemon(settings, lock)
    finally:
        lock.release()


def serve(settings: DaemonSettings) -> None:
    """Run the daemon in the foreground until SIGTERM/SIGINT. Raises TriggerLocalError (a
    StartupError when it cannot start: another daemon holds the home, the port is taken, the
    database is damaged or missing, the disk is full) or when a loop failed for good."""
    configure_logging(settings.log_json)
    prepare_home(settings)
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:  # uvloop is optional: plain asyncio works, a little slower
        runner = asyncio.run
    try:
        runner(_main(settings))
        # stopped: the interpreter's last collection would walk every object the daemon made
        # (0.3-0.8 s of an idle stop on a busy machine); frozen objects are left to the exit
        gc.freeze()
    except Exception as exc:  # a full disk at start (the lock, the secret key, the database)
        full = disk_full_error(exc, settings.home)
        if full is None:
            raise
        raise full from exc


def prepare_home(settings: DaemonSettings) -> None:
    """Before anything is opened (the lock included): a private home (umask 077, modes fixed
    with a log line; home.py)."""
    use_private_umask()
    fixed = make_private(settings.home)
    if fixed:
        log.warning("made the home private: these were readable by other users",
                    home=str(settings.home), fixed=len(fixed), paths=fixed[:5])


def main(argv: list[str] | None = None) -> None:
    """`python -m trigger_local.daemon`: every failure is one line on stderr and exit code 1;
    an unexpected one also leaves its traceback in <home>/logs/daemon-error.log."""
    parser = argparse.ArgumentParser(prog="python -m trigger_local.daemon")
    parser.add_argument("--host")
    parser.add_argument("--port", type=int)
    parser.add_argument("--home")
    parser.add_argument("--executor")
    parser.add_argument("--log-json", action="store_true", default=None)
    parser.add_argument("--database", help="postgresql://… (default: the home's SQLite file)")
    args = parser.parse_args(argv)
    if args.home:
        os.environ["TRIGGER_LOCAL_HOME"] = args.home
    try:
        settings = DaemonSettings.from_env(host=args.host, port=args.port, executor=args.executor,
                                           log_json=args.log_json, database_url=args.database)
        problem = database_url_problem(settings.database_url)
        if problem:
            raise StartupError(problem)
        check_task_env(os.environ)  # its task processes read these: a start says so
        serve(settings)
    except TriggerLocalError as exc:
        _exit(exc.message)
    except OSError as exc:
        _exit(f"{exc.strerror or exc}{f': {exc.filename}' if exc.filename else ''}")
    except Exception as exc:  # noqa: BLE001 - a bug: one line here, the traceback in a file
        _exit(f"the daemon stopped on an unexpected error ({type(exc).__name__}: {exc}); "
              f"{save_traceback()}")


def _exit(message: str) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(1)


if __name__ == "__main__":
    main()
