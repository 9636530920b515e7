"""Several daemons on one PostgreSQL database (docs/scaling.md), the daemon's side: its
heartbeat, taking over the runs of a daemon whose lease ran out (and the batches it left),
and what another daemon's commit means here (LISTEN/NOTIFY, store/postgres/daemons.py)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import socket
from typing import Any

import structlog

from .config import DaemonSettings
from .engine import Engine
from .errors import StartupError
from .store.postgres import PostgresStore
from .store.postgres.daemons import Commit
from .supervise import Supervisor

log = structlog.get_logger("daemon")


class Peers:
    """Several daemons on one PostgreSQL database (docs/scaling.md): this daemon's heartbeat,
    taking over the runs of a daemon silent for longer than `lease_timeout_s`, and the other
    daemons' commits waking this one (LISTEN/NOTIFY)."""

    def __init__(self, store: PostgresStore, engine: Engine, settings: DaemonSettings,
                 started_at: float) -> None:
        self.store, self.engine, self.settings, self.started_at = \
            store, engine, settings, started_at
        self.listener = store.listener(self.heard)
        self.known: list[dict[str, Any]] = []  # the daemons sharing the database, for status
        self._stopped = asyncio.Event()
        self._supervisor: Supervisor | None = None
        self._reloading: asyncio.Task[None] | None = None  # the catalog's reload (`heard`)
        self._stale = False  # a catalog commit was heard that no reload has read yet
        # a dequeue that finds the catalog past the cache's (engine/dequeue.py) reloads it now
        engine.projects.reload = lambda: self.heard(Commit(catalog=True))

    def start(self, supervisor: Supervisor) -> None:
        self._supervisor = supervisor
        supervisor.start("listener", self.listener.step, on_stop=self.listener.stop)
        supervisor.start("heartbeat", self.round, on_stop=self._stopped.set)

    def heard(self, commit: Commit) -> None:
        """Another daemon committed: look again; first reload the projects and versions the
        engine caches if those changed (a version registered through another daemon). While
        that reload is under way this daemon takes no run off a queue (`Projects.reloading`,
        engine/dequeue.py), and a commit heard meanwhile is looked at once it is done: the
        commits are heard in the order they were made, and a run triggered right after its
        version was registered would otherwise be dequeued without the version (its project
        unknown here yet) and failed, "Version None … is gone" (seen on a loaded machine) —
        whatever woke the dispatcher's round (this wake-up, its 5-s safety net, a local run's
        end, the resync a reconnection asks for at once). One reload at a time, again while
        catalog commits came during it (two at once could end in the wrong order: the older
        read last), and tried again until it succeeds (a failed one left the cache behind
        until the next catalog commit). A timer it set makes this daemon ask the store for
        its next timer then at the latest (the resync entry of engine/due.py: one entry
        whatever the number of such timers), so it fires it on time too (once across
        daemons: firing is a compare-and-set); after a (re)connection, when announcements may
        have been missed, it asks at once."""
        due = self.engine.ctx.due
        if commit.due_at is not None:
            due.resync_by(commit.due_at)
        if commit.reconnected:
            due.resync_by(self.engine.clock.now())
        if commit.catalog and self._supervisor is not None:
            self._stale = self.engine.projects.reloading = True
            if not self.reloading:
                self._reloading = self._supervisor.spawn("reloading projects", self._reload())
                self._reloading.add_done_callback(self._reloaded)
        elif not commit.catalog and not self.reloading:
            self.engine.hub.changed_elsewhere()

    @property
    def reloading(self) -> bool:
        return self._reloading is not None and not self._reloading.done()

    async def _reload(self) -> None:
        supervisor = self._supervisor
        assert supervisor is not None
        while self._stale and not self._stopped.is_set():
            self._stale = False
            await supervisor.retry_until_done("reloading projects", self.engine.load,
                                              give_up=self._stopped.is_set)

    def _reloaded(self, _task: asyncio.Task[None]) -> None:
        """The reload ended (done, given up at a stop, or cancelled even before it began):
        runs are dequeued again, and what was heard meanwhile is looked at."""
        if not self.reloading:  # (not when a catalog commit began the next one since)
            self.engine.projects.reloading = False
            self.engine.hub.changed_elsewhere()

    async def beat(self) -> bool:
        """Refresh this daemon's row; False when the schema moved past this daemon's code
        (another daemon's newer trigger-local migrated it): the daemon stops, saying so
        (StartupError at its start's beat, daemon_core.py: it does not start)."""
        moved = await self.store.heartbeat(host=socket.gethostname(), url=self.settings.url,
                                           executor=self.settings.executor, pid=os.getpid(),
                                           started_at=self.started_at)
        if moved is not None:
            if self._supervisor is None:
                raise StartupError(moved)
            self._supervisor.fatal(moved)
            return False
        self.known = [dataclasses.asdict(d) for d in await self.store.daemons()]
        return True

    async def round(self) -> None:
        """Sleep a fifth of the lease, beat, reload the catalog when a dequeue met a run of a
        project it does not hold (another daemon's, whose notice was not heard), take over what
        silent daemons held, and complete
        the batches a daemon killed after ending their last run left unfinished (their check
        comes after the commit on a shared store, engine/endings.py)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopped.wait(), self.settings.lease_timeout_s / 5)
        if self._stopped.is_set() or not await self.beat():
            return
        if self.engine.projects.unknown_seen:  # (engine/dequeue.py) its notice is late or lost
            self.engine.projects.unknown_seen = False
            self.heard(Commit(catalog=True))
        for run in await self.store.orphaned_runs():
            log.warning("taking over a run whose daemon stopped heartbeating", run=run.id,
                        attempt=run.attempt_count)
            await self.engine.worker_lost(
                run.id, run.attempt_count, "Its daemon stopped heartbeating for longer than "
                f"the lease ({self.settings.lease_timeout_s:g} s)", interrupted=True)
        await self.sweep_batches()

    async def sweep_batches(self) -> None:
        """Complete the batches left PROCESSING with every run ended. Looked for on the read
        pool first: a unit of work (a write transaction, and its COMMIT) only when there is
        one, not every round."""
        if await self.store.read().batches.ended(1):
            await self.engine.complete_batches()
