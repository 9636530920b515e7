"""The daemon's retention loop (issue #17): deletes runs that finished more than
`retention_days` ago and the offloaded packets only they named, and compacts the history of
runs that finished an hour ago (engine/retention.py), `BATCH` runs per transaction.

Small batches keep each write short (a few ms: the dispatcher's and the API's transactions
queue behind it, never seconds), and the loop pauses between them so that it takes at most
`SHARE` of the event loop's time; once nothing is left it sleeps `IDLE_S` (retention is in
days: a minute late costs nothing). Each batch returns freed pages to the file system,
a bounded number at a time; while free pages are left, the loop keeps the short pause."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from . import packet_sharing
from .engine import Engine

#: runs per transaction: ~100 runs with their events and snapshots is a few ms of writing
BATCH = 100
#: between batches, at least: the loop's other work goes first
PAUSE_S = 0.05
#: and at most this share of the event loop's time goes to retention (a pass over a big
#: history, after an upgrade, must not slow dispatch down: it can take its time)
SHARE = 0.1
#: after a pass found nothing more to prune (at most: a tenth of a short retention period)
IDLE_S = 60.0


class Retention:
    def __init__(self, engine: Engine, home: Path, reclaim: Callable[[], Awaitable[int]],
                 retention_days: float) -> None:
        self._engine, self._home, self._reclaim = engine, home, reclaim
        period_s = retention_days * 86_400 if retention_days > 0 else IDLE_S
        self._idle_s = min(IDLE_S, max(0.1, period_s / 10))
        self._stop = asyncio.Event()
        self.pruned = 0  # runs deleted or compacted since start

    async def step(self) -> None:
        """One batch; a supervised loop (supervise.py) calls it over and over."""
        began = time.perf_counter()
        done, packets = await self._engine.prune(BATCH)
        self.pruned += done
        await packet_sharing.delete(self._engine.packets, self._home, list(packets))
        still_free = await self._reclaim()
        took = time.perf_counter() - began
        # free pages left (an upgrade that copied a table leaves 100k+): keep returning them
        busy = done or still_free
        pause = max(PAUSE_S, took * (1 - SHARE) / SHARE) if busy else self._idle_s
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), pause)

    def stop(self) -> None:
        self._stop.set()
