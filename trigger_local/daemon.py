"""The daemon: one asyncio process with the HTTP server, the dispatcher, the timers and the
executor. `serve(settings)` runs it in the foreground until SIGTERM or SIGINT.

Shutdown (SIGTERM/SIGINT): stop starting runs, give running attempts `shutdown_grace_s` to
finish, then stop every task process; runs that were interrupted go back to their queue
(without using up an attempt) and start again on the next daemon. A daemon killed with -9
instead leaves its task processes running; the next daemon adopts them (docs/architecture.md).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import json
import os
import signal
import socket
import sqlite3
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal, NoReturn

import structlog
import uvicorn

from . import __version__
from .clock import Clock, SystemClock
from .config import DaemonSettings, ensure_secret_key, home_dir
from .dispatch.dispatcher import Dispatcher
from .engine import Engine
from .errors import StartupError, TriggerLocalError, ValidationError
from .executors.process import ProcessExecutor
from .home import (
    check_database,
    damaged_message,
    make_private,
    open_private,
    remember_database,
    use_private_umask,
)
from .indexing import index_project
from .logs import configure_logging
from .store import SqliteStore
from .store.models import ProjectDefaults, Version

log = structlog.get_logger("daemon")


class Daemon:
    """Everything the HTTP API needs (the api's DaemonServices), wired together."""

    def __init__(self, settings: DaemonSettings, clock: Clock | None = None) -> None:
        self.settings = settings
        self.secret_key = ensure_secret_key(settings.home)
        self.store = SqliteStore(str(settings.db_path))
        self.engine = Engine(self.store, clock or SystemClock(), settings)
        self.executor = _make_executor(self.engine, settings, self.secret_key, self._wake)
        self.engine.executor_capability = self.executor
        self.dispatcher = Dispatcher(self.engine, self.executor)
        self.started_at = time.time()
        self._dispatch_task: asyncio.Task[None] | None = None

    def _wake(self) -> None:
        self.dispatcher.wake()

    async def start(self) -> None:
        try:
            await self.store.open()
        except sqlite3.DatabaseError as exc:  # what quick_check did not see, or was not given time for
            raise StartupError(damaged_message(self.settings.db_path, str(exc))) from None
        remember_database(self.settings.home, self.settings.db_path)
        await self.engine.load()
        await self.executor.start()
        self._dispatch_task = asyncio.create_task(self.dispatcher.run())

    async def stop(self) -> None:
        self.dispatcher.stop()
        await self.executor.shutdown(self.settings.shutdown_grace_s)
        if self._dispatch_task is not None:
            await asyncio.wait([self._dispatch_task], timeout=5)
        await self.store.close()

    # -- DaemonServices --------------------------------------------------------------------
    async def next_assignment(self, worker_id: str, wait_s: float) -> dict[str, Any] | None | Literal["retire"]:
        return await self.executor.next_assignment(worker_id, wait_s)

    async def index_project(self, project_dir: str, dirs: list[str], python: str | None,
                            env: dict[str, str], image: str | None = None,
                            defaults: ProjectDefaults | None = None) -> Version:
        if image:  # a deployed image: its tasks are indexed inside it (docker executor)
            from .executors.images import index_image

            version = await asyncio.to_thread(index_image, image, project_dir, dirs, env)
        else:
            version = await index_project(project_dir, dirs, python, env)
        version.defaults = defaults or ProjectDefaults()
        return await self.engine.register_version(version)

    def request_freeze(self, run_id: str, attempt: int) -> dict[str, Any]:
        """The freeze handshake (api/checkpoints.py): only an executor that checkpoints answers yes."""
        request_freeze = getattr(self.executor, "request_freeze", None)
        return request_freeze(run_id, attempt) if request_freeze else {"freeze": False}

    def status(self) -> dict[str, Any]:
        current = self.engine.current_version
        return {"version": __version__, "pid": os.getpid(), "url": self.settings.url,
                "home": str(self.settings.home), "executor": self.executor.describe(),
                "started_at": self.started_at, "current_version": current.id if current else None,
                "tasks": [t.task_id for t in current.tasks] if current else [],
                "concurrency": self.settings.concurrency, "max_processes": self.settings.max_processes}


def _make_executor(engine: Engine, settings: DaemonSettings, secret_key: str,
                   wake: Callable[[], None]) -> ProcessExecutor:
    if settings.executor == "docker":
        from .executors.docker import DockerExecutor  # imports the docker SDK: only when asked for

        return DockerExecutor(engine, settings, secret_key, wake)
    if settings.executor != "process":
        raise ValidationError(f"Unknown executor {settings.executor!r}: use process or docker")
    return ProcessExecutor(engine, settings, secret_key, wake)


class _Server(uvicorn.Server):
    """uvicorn without its own signal handlers: the daemon handles them to shut down in order."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _bind(host: str, port: int) -> socket.socket:
    # IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY on sockets whose proto says TCP, and
    # without it every small response waits ~40 ms for Nagle's algorithm.
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OverflowError:
        sock.close()
        raise StartupError(f"Cannot listen on {host}:{port}: a port is a number from 0 to 65535 "
                           "(0 picks a free one). Pass another --port or TRIGGER_LOCAL_PORT.") from None
    except OSError as exc:
        sock.close()
        if exc.errno != errno.EADDRINUSE:
            raise StartupError(f"Cannot listen on {host}:{port}: {exc.strerror or exc}. Check --host "
                               "(TRIGGER_LOCAL_HOST) and --port (TRIGGER_LOCAL_PORT).") from None
        raise StartupError(f"Cannot listen on {host}:{port}: {exc.strerror}. Another program (or another "
                           "trigger-local daemon) uses that port: stop it or pass --port.") from None
    sock.listen(1024)
    sock.setblocking(False)
    return sock


def running_daemon(home: Path) -> dict[str, Any] | None:
    """The daemon.json of a live daemon in `home`, or None."""
    path = home / "daemon.json"
    try:
        info = json.loads(path.read_text())
        os.kill(int(info["pid"]), 0)
    except (OSError, ValueError, KeyError):
        return None
    return info


async def _main(settings: DaemonSettings) -> None:
    from .api.app import create_app

    other = running_daemon(settings.home)
    if other is not None and other.get("pid") != os.getpid():
        raise TriggerLocalError(f"A daemon is already running for {settings.home} (pid {other['pid']}, "
                                f"{other.get('url')}). Stop it with `trigger-local down` first.")
    sock = _bind(settings.host, settings.port)
    settings.port = sock.getsockname()[1]
    daemon = Daemon(settings)
    await daemon.start()
    app = create_app(daemon)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off",
                            timeout_keep_alive=60, http="httptools")
    server = _Server(config)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    serve_task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started and not serve_task.done():
        await asyncio.sleep(0.01)
    info_path = settings.home / "daemon.json"
    tmp_path = info_path.with_name(f".daemon.json.{os.getpid()}")
    tmp_path.write_text(json.dumps({"url": settings.url, "pid": os.getpid(), "version": __version__,
                                    "executor": settings.executor, "started_at": time.time(),
                                    "home": str(settings.home)}))
    tmp_path.replace(info_path)  # atomic: a reader never sees a half-written file
    log.info("daemon ready", url=settings.url, home=str(settings.home), executor=settings.executor, pid=os.getpid())
    try:
        await asyncio.wait([serve_task, asyncio.create_task(stopping.wait())], return_when=asyncio.FIRST_COMPLETED)
        log.info("shutting down", grace_s=settings.shutdown_grace_s)
        await daemon.stop()
    finally:
        server.should_exit = True
        await asyncio.wait([serve_task], timeout=5)
        with contextlib.suppress(FileNotFoundError):
            if json.loads(info_path.read_text()).get("pid") == os.getpid():
                info_path.unlink()
        log.info("daemon stopped")


def serve(settings: DaemonSettings) -> None:
    """Run the daemon in the foreground until SIGTERM/SIGINT. A daemon that cannot start
    raises StartupError (or another TriggerLocalError) saying why."""
    configure_logging(settings.log_json)
    prepare_home(settings)
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:  # uvloop is optional: plain asyncio works, a little slower
        runner = asyncio.run
    runner(_main(settings))


def prepare_home(settings: DaemonSettings) -> None:
    """Before anything is opened: a private home (umask 077, modes fixed with a log line) and a
    database that is there when it should be and passes quick_check (home.py)."""
    use_private_umask()
    fixed = make_private(settings.home)
    if fixed:
        log.warning("made the home private: these were readable by other users", home=str(settings.home),
                    fixed=len(fixed), paths=fixed[:5])
    if not check_database(settings.home, settings.db_path, settings.db_check_s):
        log.warning("the database check ran out of time and was skipped", seconds=settings.db_check_s,
                    database=str(settings.db_path), setting="TRIGGER_LOCAL_DB_CHECK_S")


def main(argv: list[str] | None = None) -> None:
    """`python -m trigger_local.daemon`: every failure is one line on stderr and exit code 1;
    an unexpected one also leaves its traceback in <home>/logs/daemon-error.log."""
    parser = argparse.ArgumentParser(prog="python -m trigger_local.daemon")
    parser.add_argument("--host")
    parser.add_argument("--port", type=int)
    parser.add_argument("--home")
    parser.add_argument("--executor")
    parser.add_argument("--log-json", action="store_true", default=None)
    args = parser.parse_args(argv)
    if args.home:
        os.environ["TRIGGER_LOCAL_HOME"] = args.home
    try:
        settings = DaemonSettings.from_env(host=args.host, port=args.port, executor=args.executor,
                                           log_json=args.log_json)
        serve(settings)
    except TriggerLocalError as exc:
        _exit(exc.message)
    except OSError as exc:
        _exit(f"{exc.strerror or exc}{f': {exc.filename}' if exc.filename else ''}")
    except Exception as exc:  # noqa: BLE001 - a bug: one line here, the traceback in a file
        _exit(f"the daemon stopped on an unexpected error ({type(exc).__name__}: {exc}); "
              f"{_save_traceback()}")


def _exit(message: str) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(1)


def _save_traceback() -> str:
    path = home_dir() / "logs" / "daemon-error.log"
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with open_private(path, "a") as fh:
            fh.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} pid {os.getpid()}\n{traceback.format_exc()}\n")
    except OSError:
        return "please report it as a bug"
    return f"its traceback is in {path}; please report it as a bug"


if __name__ == "__main__":
    main()
