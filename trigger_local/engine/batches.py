"""Batches: a set of runs triggered together, and the BATCH waitpoint that completes when the
last of them ends (with every item's result)."""

from __future__ import annotations

import json
from collections.abc import Sequence

from .. import packets
from ..errors import NotFoundError
from ..ids import new_id
from ..store.daemon_areas import KvReader
from ..store.models import COMPLETED, WP_BATCH, WP_WAITING, Batch, Waitpoint
from . import waitpoints
from .options import TriggerRequest
from .unit import Tx


async def create(tx: Tx, run_count: int, parent_run_id: str | None, wait: bool,
                 idempotency_key: str | None, project: str | None) -> tuple[Batch, bool]:
    """A new batch of `project` (with a BATCH waitpoint when the parent waits on it), or (with
    True) the one `idempotency_key` made before in that project."""
    if idempotency_key:
        existing = await tx.batches.find_by_key(idempotency_key, project)
        if existing is not None:
            return existing, True
    batch = Batch(id=new_id("batch"), run_count=run_count, created_at=tx.now, status="PENDING",
                  parent_run_id=parent_run_id, idempotency_key=idempotency_key, project=project)
    if wait:
        wp = Waitpoint(id=new_id("waitpoint"), type=WP_BATCH, status=WP_WAITING,
                       created_at=tx.now, batch_id=batch.id)
        await tx.waitpoints.insert(wp)
        batch.waitpoint_id = wp.id
    await tx.batches.insert(batch)
    return batch, False


async def add_runs(tx: Tx, batch: Batch, run_ids: Sequence[str]) -> Batch:
    """Add runs to the batch (each once); it may complete at once (runs that ended already)."""
    ids = list(dict.fromkeys([*batch.run_ids, *run_ids]))
    await tx.batches.update(batch.id, run_ids=ids, status="PROCESSING")
    batch.run_ids = ids
    await maybe_complete(tx, batch.id)
    return batch


def items_key(batch_id: str) -> str:
    """The kv key of a two-phase batch's items: which index made which run."""
    return f"batch_items:{batch_id}"


async def items(kv: KvReader, batch_id: str) -> dict[str, str]:
    """The items a two-phase batch has received: index (as a string) → run id."""
    found: dict[str, str] = json.loads(await kv.get(items_key(batch_id)) or "{}")
    return found


def adopt(req: TriggerRequest, batch: Batch, project: str | None) -> None:
    """Make `req` an item of `batch`: in `project` (None: its task's one project, or the
    parent's), a child of the batch's parent when it has one."""
    req.batch_id, req.project = batch.id, project
    if batch.parent_run_id:
        req.parent_run_id = batch.parent_run_id
        req.resume_parent = batch.waitpoint_id is not None


async def add_runs_to(tx: Tx, batch_id: str, run_ids: Sequence[str]) -> Batch:
    batch = await tx.batches.get(batch_id)
    if batch is None:
        raise NotFoundError(f"Batch {batch_id} not found")
    return await add_runs(tx, batch, run_ids)


async def maybe_complete(tx: Tx, batch_id: str) -> None:
    """Complete the batch, and its waitpoint, once it has all its runs and all have ended."""
    # first the index seek: every run of a batch but its last to end stops here, without
    # reading the batch's row and its list of run ids (500 of them for a full batch; #13)
    if await tx.batches.has_unfinished(batch_id):
        return
    batch = await tx.batches.get(batch_id)
    if batch is None or batch.status == "COMPLETED" or len(batch.run_ids) < batch.run_count:
        return
    await tx.batches.update(batch_id, status="COMPLETED")
    if batch.waitpoint_id:
        wp = await tx.waitpoints.get(batch.waitpoint_id)
        if wp is not None:
            runs = await tx.runs.get_many(batch.run_ids)
            items = [{"id": r.id, "ok": r.status == COMPLETED, "output": r.output,
                      "outputType": r.output_type or packets.JSON, "error": r.error}
                     for r in runs]
            await waitpoints.complete(tx, wp, json.dumps(items), packets.JSON)


async def complete_ended(tx: Tx, batch_ids: Sequence[str] | None) -> None:
    """Complete those of `batch_ids` that are done; None: up to 100 PROCESSING batches whose
    runs all ended (the sweep, engine/endings.py)."""
    ids = await tx.batches.ended(100) if batch_ids is None else batch_ids
    for batch_id in dict.fromkeys(ids):
        await maybe_complete(tx, batch_id)
