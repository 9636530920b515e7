"""What happens when a run ends, however it ends (completed, failed, canceled, expired, timed
out): its waits are released, its RUN waitpoint and its batch complete, and a canceled run's
children that would resume it are canceled too.

On a store daemons share, a batch is completed after the commit that ended its run, in a unit
of its own (`Engine.complete_batches`): two daemons ending runs of one batch at once would each
read the batch's runs the other writes, and the database would refuse one of them every time
(a serialization failure, the whole group commit run again; docs/scaling.md). The check after
the commit sees every run ended before it, so the later of two such checks completes the batch;
a daemon killed between the commit and the check leaves the batch to the other daemons' sweep
(peers.py, `BatchStore.ended`)."""

from __future__ import annotations

from ..store.models import CANCELED, DEQUEUED, EXECUTING, WAITING, Run
from . import batches, waitpoints
from .events import AttemptAborted
from .runs import get, move
from .unit import Tx


async def after_final(tx: Tx, run: Run, *, blocked: bool = True) -> None:
    """`run` just ended: free its idempotent waits, complete its waitpoint and its batch's.
    `blocked=False`: it ended from EXECUTING, so no waitpoint blocks it — a run has edges only
    while WAITING (waits.py blocks it in the move to WAITING, waitpoints.py unblocks it in the
    move out) — and its edges are not deleted (a statement per finished run, issue #13)."""
    if blocked:
        await tx.waitpoints.unblock(run.id)
    if run.waitpoint_id:
        await waitpoints.complete_run_waitpoint(tx, run)
    if run.batch_id and tx.ctx.shared_store:
        tx.batch_checks.append(run.batch_id)
    elif run.batch_id:
        await batches.maybe_complete(tx, run.batch_id)
    if run.status == CANCELED:
        for child in await tx.runs.children(run.id):
            if child.resume_parent and not child.is_final:
                await cancel(tx, child, f"parent {run.id} was canceled")


async def cancel(tx: Tx, run: Run, reason: str) -> Run:
    """Cancel a run that has not ended; a process running it is killed (`AttemptAborted`)."""
    worker_id = run.worker_id
    if run.status in (EXECUTING, WAITING, DEQUEUED):
        attempts = await tx.attempts.for_run(run.id)
        if attempts and attempts[-1].status == EXECUTING:
            await tx.attempts.update(attempts[-1].id, status=CANCELED, finished_at=tx.now)
    await move(tx, run, CANCELED, completed_at=tx.now, worker_id=None, deadline_at=None,
               error={"name": "Canceled", "message": reason}, description=reason)
    if worker_id:
        await tx.record(AttemptAborted(run_id=run.id, worker_id=worker_id, reason=reason))
    await after_final(tx, run)
    return run


async def cancel_by_request(tx: Tx, run_id: str) -> Run:
    """Cancel a run; one that already ended is returned as it is."""
    run = await get(tx.runs, run_id)
    return run if run.is_final else await cancel(tx, run, "canceled by request")
