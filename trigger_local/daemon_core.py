"""The daemon's parts wired together (`Daemon`) and its life in one process (`run_daemon`):
the store, the engine, the executor, the dispatcher and the background loops under the
supervisor, the HTTP server, the signals. `trigger_local/daemon.py` is the process's entry: it
checks the database while this module and the API are imported, then calls `run_daemon`.

Shutdown (SIGTERM/SIGINT), in this order (docs/architecture.md, "Crash safety"):
1. the dispatcher stops: no run starts any more;
2. running attempts get `shutdown_grace_s` to finish (the HTTP server still serves, so they can
   report), then every task process is stopped; interrupted runs go back to their queue (without
   using up an attempt) and start again on the next daemon;
3. the HTTP server stops accepting, long-polls answer at once, in-flight requests finish
   (at most DRAIN_S); then the store closes, last.
Waiting runs keep their place: checkpointed, or their process left running for the next daemon
to adopt (executors/stopping.py). KILL_WAITING_SIGNAL (SIGUSR1, `trigger-local down
--kill-waiting`) stops it the same way but kills the waiting runs' processes too.
An idle daemon is gone in well under a second, a busy one within the grace plus one second. A
daemon killed with -9 instead leaves its task processes running; the next daemon adopts them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sqlite3
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import structlog

from . import __version__
from .clock import Clock, SystemClock
from .config import KILL_WAITING_SIGNAL, DaemonSettings, ensure_secret_key
from .daemon_lock import DaemonLock
from .dispatch.dispatcher import Dispatcher
from .engine import Engine
from .engine.events import Draining
from .errors import DaemonFailedError, StartupError, ValidationError
from .executors.at_once import WarmSlots
from .executors.pool import PoolExecutor
from .executors.process import process_executor
from .home import (
    daemon_id,
    last_port,
    open_failure,
    remember_database,
    remember_port,
    write_info,
)
from .http_server import DRAIN_S, HttpServer, bind
from .indexing import index_project
from .peers import Peers
from .retention import Retention
from .store import Store
from .store.models import ProjectDefaults, Version
from .store.postgres import PostgresStore
from .store.sqlite import SqliteStore
from .supervise import Supervisor, report

log = structlog.get_logger("daemon")

DISPATCH_STOP_S = 2.0  # the dispatcher's current round may finish (it may be starting processes)


def make_store(settings: DaemonSettings) -> Store:
    """The home's SQLite file, or the PostgreSQL database of `database_url` (shared with other
    daemons, each known by its home's id)."""
    if settings.database_url:
        return PostgresStore(settings.database_url, daemon_id=daemon_id(settings.home),
                             lease_s=settings.lease_timeout_s)
    return SqliteStore(str(settings.db_path))


class Daemon:
    """Everything the HTTP API needs (the api's DaemonServices), wired together."""

    def __init__(self, settings: DaemonSettings, clock: Clock | None = None) -> None:
        self.settings = settings
        self.secret_key = ensure_secret_key(settings.home)
        self.store = make_store(settings)
        self.engine = Engine(self.store, clock or SystemClock(), settings)
        self.supervisor = Supervisor(settings.loop_failure_limit, home=settings.home)
        self.executor = _make_executor(self.engine, settings, self.secret_key, self._wake,
                                       self.supervisor)
        self.engine.ctx.capability = self.executor  # asked whether a wait can be checkpointed
        self.dispatcher = Dispatcher(self.engine, self.executor)
        # a run starts in its trigger's transaction (engine/starting.py; on PostgreSQL too)
        self.engine.ctx.placer = WarmSlots(self.executor, self.dispatcher.idle)
        self.retention = Retention(self.engine, settings.home, self.store.reclaim,
                                   settings.retention_days)
        self.started_at = time.time()
        self.peers = Peers(self.store, self.engine, settings, self.started_at) \
            if isinstance(self.store, PostgresStore) else None
        #: long-polls waiting in their requests' tasks, and those a drain cancelled
        self._polls: set[asyncio.Task[Any]] = set()
        self._drained: set[asyncio.Task[Any]] = set()
        self.engine.hub.subscribe(Draining, self._end_polls)

    def _wake(self) -> None:
        self.dispatcher.wake()

    async def start(self) -> None:
        try:
            await self.store.open()
        except sqlite3.DatabaseError as exc:  # what quick_check missed, or had no time for
            raise open_failure(self.settings.home, self.settings.db_path, exc) from None
        if not self.settings.database_url:
            remember_database(self.settings.home, self.settings.db_path)
        if self.peers is not None:
            await self.peers.beat()  # known to the others before it holds anything
        await self.engine.load()
        await self.executor.start()
        self.supervisor.start("dispatcher", self.dispatcher.step, on_stop=self.dispatcher.stop)
        if self.peers is not None:
            self.peers.start(self.supervisor)
        self.supervisor.start("retention", self.retention.step, on_stop=self.retention.stop)

    async def stop(self, http: HttpServer | None = None) -> None:
        """Stop in order (the module docstring): dispatching, task processes, HTTP, the store.
        A step that fails is reported and the next one still runs."""
        # first: draining HTTP below ends every dev's session connection, which must not mark
        # their projects as stopped
        self.engine.projects.forget_sessions()
        began = time.monotonic()
        await self.supervisor.stop("dispatcher", DISPATCH_STOP_S)
        # one grace in all
        grace_s = max(0.0, self.settings.shutdown_grace_s - (time.monotonic() - began))
        await _step("stopping task processes", self.executor.shutdown(grace_s))
        self.engine.hub.drain()
        if http is not None:
            await _step("stopping the HTTP server", http.drain(DRAIN_S))
        await self.supervisor.stop_all(timeout_s=1.0)
        await self.store.close()

    # -- DaemonServices --------------------------------------------------------------------
    async def next_assignment(self, worker_id: str, wait_s: float, ack: int | None = None
                              ) -> dict[str, Any] | list[dict[str, Any]] | None | Literal["retire"]:
        """The executor's long-poll, answered at once with "nothing yet" when the daemon drains
        its HTTP server (the process polls again, and finds the next daemon). It waits in the
        caller's task, and a drain cancels it (an assignment not yet taken stays with the
        executor): raced against the drain in a task of its own, the answer to a message left
        three loop turns after it, behind the dispatcher's next round (issue #13)."""
        task = asyncio.current_task()
        if self.engine.hub.draining.is_set() or task is None:
            return None
        self._polls.add(task)
        try:
            return await self.executor.next_assignment(worker_id, wait_s, ack)
        except asyncio.CancelledError:
            if task in self._drained and task.uncancel() == 0:
                return None  # the drain's cancel alone: the request itself goes on
            raise
        finally:
            self._polls.discard(task)
            self._drained.discard(task)

    def _end_polls(self, _: Draining) -> None:
        for task in self._polls:
            self._drained.add(task)
            task.cancel()

    async def index_project(self, project_dir: str, dirs: list[str], python: str | None,
                            env: dict[str, str], image: str | None = None, *, project: str,
                            dev: bool = False, defaults: ProjectDefaults | None = None) -> Version:
        if image:  # a deployed image: its tasks are indexed inside it (docker executor)
            from .executors.images import index_image

            version = await asyncio.to_thread(index_image, image, project_dir, dirs, env)
        else:
            version = await index_project(project_dir, dirs, python, env)
        version.project = project
        version.defaults = defaults or ProjectDefaults()
        return await self.engine.register_version(version, dev=dev)

    def request_freeze(self, run_id: str, attempt: int) -> dict[str, Any]:
        """The freeze handshake (api/checkpoints.py): only an executor that checkpoints answers
        yes."""
        return self.executor.request_freeze(run_id, attempt)

    def health(self) -> dict[str, Any]:
        return self.supervisor.health()

    def status(self) -> dict[str, Any]:
        current = self.engine.current_version  # the newest of any project; the API narrows it
        return {"version": __version__, "pid": os.getpid(), "url": self.settings.url,
                "home": str(self.settings.home), "executor": self.executor.describe(),
                "started_at": self.started_at, "current_version": current.id if current else None,
                "tasks": [t.task_id for t in current.tasks] if current else [],
                "concurrency": self.settings.concurrency,
                "max_processes": self.settings.max_processes,
                **({"daemons": self.peers.known} if self.peers is not None else {})}


async def _step(what: str, work: Awaitable[object]) -> None:
    try:
        await work
    except Exception as exc:  # noqa: BLE001 - the rest of the shutdown must still happen
        report("error", f"{what} failed", exc_info=exc)


def _make_executor(engine: Engine, settings: DaemonSettings, secret_key: str,
                   wake: Callable[[], None], supervisor: Supervisor) -> PoolExecutor:
    if settings.executor == "docker":
        from .executors.docker import docker_executor  # imports the docker SDK: only when asked

        return docker_executor(engine, settings, secret_key, wake, supervisor=supervisor)
    if settings.executor != "process":
        raise ValidationError(f"Unknown executor {settings.executor!r}: use process or docker")
    return process_executor(engine, settings, secret_key, wake, supervisor=supervisor)


def _listen(settings: DaemonSettings) -> socket.socket:
    """The daemon's socket. Port 0 picks a free port the first time, and the same one again at
    later starts while it is free: task processes a stopped daemon left running (waiting runs)
    call the url they started with, and must find the next daemon there."""
    previous = last_port(settings.home) if settings.port == 0 else None
    if previous is not None:
        with contextlib.suppress(StartupError):
            return bind(settings.host, previous)
    return bind(settings.host, settings.port)


async def run_daemon(settings: DaemonSettings, lock: DaemonLock) -> None:
    """Serve until SIGTERM/SIGINT (or a loop that fails for good), then stop in order."""
    from .api.app import create_served_app

    sock = _listen(settings)
    settings.port = sock.getsockname()[1]
    remember_port(settings.home, settings.port)
    lock.record(url=settings.url)
    daemon = Daemon(settings)
    stopping = asyncio.Event()
    daemon.supervisor.on_fatal = lambda _reason: stopping.set()
    await daemon.start()
    http = HttpServer(create_served_app(daemon), sock)
    serving = await http.start()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)

    def stop_killing_waiting() -> None:  # `trigger-local down --kill-waiting`
        daemon.executor.kill_waiting = True
        stopping.set()

    loop.add_signal_handler(KILL_WAITING_SIGNAL, stop_killing_waiting)
    info_path = write_info(settings)
    log.info("daemon ready", url=settings.url, home=str(settings.home), executor=settings.executor,
             pid=os.getpid())
    try:
        signalled = asyncio.create_task(stopping.wait())
        await asyncio.wait([serving, signalled], return_when=asyncio.FIRST_COMPLETED)
        signalled.cancel()
        if serving.done() and not stopping.is_set():
            daemon.supervisor.fatal("the HTTP server stopped while the daemon was running")
        log.info("shutting down", grace_s=settings.shutdown_grace_s)
        await daemon.stop(http)
    finally:
        with contextlib.suppress(OSError, ValueError):
            if json.loads(info_path.read_text()).get("pid") == os.getpid():
                info_path.unlink()
        log.info("daemon stopped")
    if daemon.supervisor.fatal_reason:
        raise DaemonFailedError(f"{daemon.supervisor.fatal_reason}: the daemon stopped. Its log "
                                "says more; start it again with `trigger-local up`.")
