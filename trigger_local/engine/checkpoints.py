"""Checkpoint records: what the executor reports after it froze (or failed to freeze, or
restored) a waiting run's process. The engine keeps the history; the executor does the I/O."""

from __future__ import annotations

from ..store.models import (
    CK_ACTIVE,
    CK_DELETED,
    CK_FAILED,
    CK_PENDING,
    CK_RESTORED,
    WAITING,
    Checkpoint,
)
from .events import (
    CheckpointFailed,
    CheckpointRecorded,
    RunCheckpointed,
    RunRestored,
    checkpoint_data,
)
from .runs import move
from .states import K_SUSPENDED
from .unit import Tx


async def begin(tx: Tx, ck: Checkpoint) -> None:
    """Commit a `pending` row before the dump starts: a daemon killed while the dump runs (or
    right after it) leaves this trace, and the next daemon finishes or undoes it."""
    ck.status = CK_PENDING
    await tx.checkpoints.insert(ck)


async def undo(tx: Tx, checkpoint_id: str) -> None:
    """The dump failed, never ran, or is useless: forget its pending row."""
    await tx.checkpoints.delete(checkpoint_id, CK_PENDING)


async def record(tx: Tx, ck: Checkpoint) -> bool:
    """Record a successful dump (its pending row becomes `active`). A still-WAITING run becomes
    `suspended`; a run whose wait completed meanwhile keeps its state (the dispatcher restores
    it when it gets a slot). False when the attempt is over (canceled during the dump): the
    images are useless and the pending row is gone."""
    run = await tx.runs.get(ck.run_id)
    if run is None or run.is_final or run.attempt_count != ck.attempt:
        await tx.checkpoints.delete(ck.id, CK_PENDING)
        return False
    if not await tx.checkpoints.update(ck.id, CK_PENDING, status=CK_ACTIVE,
                                       size_bytes=ck.size_bytes, dump_ms=ck.dump_ms, path=ck.path):
        return False  # begin() was not called, or the row was undone
    ck.status = CK_ACTIVE
    if run.status == WAITING:
        # no dump time: a dump the last daemon left pending, finished by this one
        how = f"in {ck.dump_ms:.0f} ms" if ck.dump_ms is not None \
            else "(recorded after a daemon restart)"
        await move(tx, run, WAITING, kind=K_SUSPENDED, event=RunCheckpointed,
                   description=f"checkpointed {how}",
                   data=checkpoint_data(ck.id, ck.size_bytes, ck.dump_ms, ck.path))
    else:
        await tx.record(CheckpointRecorded(run_id=run.id, checkpoint_id=ck.id,
                                           size_bytes=ck.size_bytes, dump_ms=ck.dump_ms,
                                           path=ck.path))
    return True


async def refused(tx: Tx, run_id: str, reason: str) -> None:
    """A checkpoint was wanted but not made: the process stays alive and is held."""
    await tx.record(CheckpointFailed(run_id=run_id, reason=reason))


async def restored(tx: Tx, checkpoint_id: str, restore_ms: float) -> None:
    await tx.checkpoints.update(checkpoint_id, CK_ACTIVE, status=CK_RESTORED,
                                restore_ms=restore_ms, restored_at=tx.now)
    ck = await tx.checkpoints.get(checkpoint_id)
    if ck is not None:
        await tx.record(RunRestored(run_id=ck.run_id, checkpoint_id=ck.id, restore_ms=restore_ms))


async def unusable(tx: Tx, checkpoint_id: str, error: str, *, deleted: bool = False) -> None:
    """A checkpoint that can no longer be restored: restore failed, or its run ended."""
    await tx.checkpoints.update(checkpoint_id, CK_ACTIVE,
                                status=CK_DELETED if deleted else CK_FAILED, error=error or None)
