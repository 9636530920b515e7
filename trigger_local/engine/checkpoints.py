"""Checkpoint records: what the executor reports after it froze (or failed to freeze, or
restored) a waiting run's process. The engine keeps the history; the executor does the I/O."""

from __future__ import annotations

from ..store.checkpoints import (
    CK_ACTIVE,
    CK_DELETED,
    CK_FAILED,
    CK_PENDING,
    CK_RESTORED,
    Checkpoint,
    CheckpointOps,
)
from ..store.models import WAITING
from .base import EngineBase
from .states import K_SUSPENDED


class CheckpointMixin(EngineBase):
    async def begin_checkpoint(self, ck: Checkpoint) -> None:
        """Commit a `pending` row before the dump starts: a daemon killed while the dump runs (or
        right after it) leaves this trace, and the next daemon finishes or undoes it."""
        async with self._tx() as tx:
            ck.status = CK_PENDING
            await CheckpointOps(tx.ops).insert(ck)

    async def undo_checkpoint(self, checkpoint_id: str) -> None:
        """The dump failed, never ran, or is useless: forget its pending row."""
        async with self._tx() as tx:
            await CheckpointOps(tx.ops).delete(checkpoint_id, CK_PENDING)

    async def record_checkpoint(self, ck: Checkpoint) -> bool:
        """Record a successful dump (its pending row becomes `active`). A still-WAITING run becomes
        `suspended`; a run whose wait completed meanwhile keeps its state (the dispatcher restores
        it when it gets a slot). False when the attempt is over (canceled during the dump): the
        images are useless and the pending row is gone."""
        async with self._tx() as tx:
            run = await tx.ops.get_run(ck.run_id)
            ops = CheckpointOps(tx.ops)
            if run is None or run.is_final or run.attempt_count != ck.attempt:
                await ops.delete(ck.id, CK_PENDING)
                return False
            if not await ops.update(ck.id, CK_PENDING, status=CK_ACTIVE, size_bytes=ck.size_bytes,
                                    dump_ms=ck.dump_ms, path=ck.path):
                return False  # begin_checkpoint() was not called, or the row was undone
            ck.status = CK_ACTIVE
            data = {"checkpoint_id": ck.id, "size_bytes": ck.size_bytes, "dump_ms": ck.dump_ms, "path": ck.path}
            if run.status == WAITING:
                # no dump time: a dump the last daemon left pending, finished by this one
                how = f"in {ck.dump_ms:.0f} ms" if ck.dump_ms is not None else "(recorded after a daemon restart)"
                await self._move(tx, run, WAITING, kind=K_SUSPENDED, event="run.checkpointed",
                                 description=f"checkpointed {how}", data=data)
            else:
                await tx.ops.insert_event(run.id, "run.checkpointed", tx.now, {"run_id": run.id, **data})
            return True

    async def checkpoint_refused(self, run_id: str, reason: str) -> None:
        """A checkpoint was wanted but not made: the process stays alive and is held."""
        async with self._tx() as tx:
            await tx.ops.insert_event(run_id, "run.checkpoint_failed", tx.now, {"run_id": run_id, "reason": reason})
            tx.emit("run.checkpoint_failed", run_id=run_id, reason=reason)

    async def checkpoint_restored(self, checkpoint_id: str, restore_ms: float) -> None:
        async with self._tx() as tx:
            ops = CheckpointOps(tx.ops)
            await ops.update(checkpoint_id, CK_ACTIVE, status=CK_RESTORED, restore_ms=restore_ms,
                             restored_at=tx.now)
            ck = await ops.get(checkpoint_id)
            if ck is not None:
                await tx.ops.insert_event(ck.run_id, "run.restored", tx.now,
                                          {"run_id": ck.run_id, "checkpoint_id": ck.id,
                                           "restore_ms": round(restore_ms, 1)})

    async def checkpoint_unusable(self, checkpoint_id: str, error: str, *, deleted: bool = False) -> None:
        """A checkpoint that can no longer be restored: restore failed, or its run ended."""
        async with self._tx() as tx:
            await CheckpointOps(tx.ops).update(checkpoint_id, CK_ACTIVE, status=CK_DELETED if deleted else CK_FAILED,
                                               error=error or None)

    async def active_checkpoints(self) -> list[Checkpoint]:
        return await CheckpointOps(self.store.read()).active()

    async def pending_checkpoints(self) -> list[Checkpoint]:
        return await CheckpointOps(self.store.read()).pending()

    async def run_checkpoints(self, run_id: str) -> list[Checkpoint]:
        return await CheckpointOps(self.store.read()).for_run(run_id)

    async def checkpoint_totals(self) -> tuple[int, int]:
        """(count, bytes) of the checkpoints on disk."""
        return await CheckpointOps(self.store.read()).totals()
