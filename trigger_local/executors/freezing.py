"""The freeze handshake, the executor's side (docs/worker-protocol.md, docs/checkpoints.md):
the runtime of a waiting run closes its connections and asks to be frozen; the dump starts in
the background, and the runtime stays quiet until a done file says how it ended."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog

from ..store.models import Checkpoint
from .base import WorkerPool
from .sockets import SOCKET_WAIT_S
from .workers import HELD, WorkerHandle

log = structlog.get_logger("executor")

FREEZE_QUEUE_S = 0.4  # extra quiet asked of a runtime per dump already under way
#: where the daemon writes a freeze's done file, and that path as the runtime sees it
DoneFile = Callable[[str, str, int], tuple[Path, str]]


class FreezeHandshake:
    def __init__(self, pool: WorkerPool, done_file: DoneFile) -> None:
        self.pool = pool
        self.done_file = done_file
        self.in_flight = 0

    def request(self, worker: WorkerHandle | None, run_id: str, attempt: int) -> dict[str, Any]:
        """`worker` (the process holding `run_id`, if any) asks to be frozen; the answer tells
        the runtime whether, and how long to stay quiet."""
        if worker is None or worker.attempt != attempt or worker.state != HELD \
                or worker.freezing is not None or not self.pool.can_checkpoint():
            return {"freeze": False}
        # The runtime stays quiet until this file exists: written when the dump is over (the
        # process then only sees it after its restore) or has failed. A timed quiet was not
        # enough: with 200 runs freezing at once, dumps started late, runtimes polled again
        # meanwhile, and a dump of a process holding a connection fails.
        done, seen_as = self.done_file(worker.id, run_id, attempt)
        done.parent.mkdir(parents=True, exist_ok=True)
        done.unlink(missing_ok=True)
        self.pool.spawn(self._freeze(worker, run_id, attempt, done))
        quiet_s = self.pool.settings.freeze_grace_s + FREEZE_QUEUE_S * self.in_flight
        return {"freeze": True, "pollAfterS": round(quiet_s, 3), "doneFile": seen_as}

    async def _freeze(self, worker: WorkerHandle, run_id: str, attempt: int, done: Path) -> None:
        self.in_flight += 1
        frozen = False
        try:
            frozen = await self.pool.freeze(worker, run_id, attempt, SOCKET_WAIT_S)
        finally:
            self.in_flight -= 1
            done.write_text("frozen" if frozen else "held")
        if frozen:
            await self.pool.forget_frozen(worker, run_id)
        else:
            worker.freezing = None

    def settled(self, ck: Checkpoint, finished: bool) -> None:
        """A dump the last daemon left pending was finished or undone (the checkpointer's
        start()): the runtime may still wait for its done file; give it its answer."""
        done, _ = self.done_file(ck.worker_id, ck.run_id, ck.attempt)
        try:
            done.parent.mkdir(parents=True, exist_ok=True)
            done.write_text("frozen" if finished else "held")
        except OSError as exc:
            log.warning("could not write a freeze done file", path=str(done), error=str(exc))
