"""Retention (issue #17), one batch per unit of work so that no transaction holds the writer
long; the daemon's retention loop (trigger_local/retention.py) calls `prune` over and over.

- Runs that finished more than `retention_days` ago are deleted with everything that hangs off
  them (store `runs.delete_many`), and the offloaded packets no run names any more are handed
  back for deletion.
- Runs that finished more than `compact_after_s` (a setting: an hour) ago are compacted:
  their history keeps what `runs show`, the trace and the API still read — the run row, its
  attempts, logs and spans, and the events that say more than a status (`run.waiting` names
  the waitpoint the trace and the token list show, checkpoints, metadata, retries, …). The
  plain status events and the snapshots go: the run row says where it ended, when and why.
  The delay leaves event readers (`dev`, the SSE stream, the long-poll) time to see them
  first.
"""

from __future__ import annotations

import json

from ..packet_store import STORE
from ..statuses import RunStatus
from .triggering import REQUEST_CACHE_S
from .unit import Tx

DAY_S = 86_400.0
#: the events compaction deletes: one status each, which the run row and its final snapshot
#: already say (a `run.waiting` is kept: it names the waitpoint)
PLAIN_EVENTS = sorted({"run.created", "run.logs"}
                      | {f"run.{s.lower()}" for s in RunStatus} - {"run.waiting"})
WATERMARK = "retention.compacted_through"


async def prune(tx: Tx, limit: int) -> tuple[int, list[str]]:
    """Delete, else compact, up to `limit` runs, else forget up to `limit` request keys'
    answers older than their window: (how many, the offloaded packets that only the deleted
    runs named, for the caller to delete after the commit)."""
    deleted, packets = await _delete(tx, limit)
    if deleted:
        return deleted, packets
    compacted = await _compact(tx, limit)
    if compacted:
        return compacted, []
    # both SDKs send a request key with every trigger: one answer kept per trigger, needed
    # only within its window (engine/triggering.py)
    return await tx.requests.prune(tx.now - REQUEST_CACHE_S, limit), []


async def _delete(tx: Tx, limit: int) -> tuple[int, list[str]]:
    days = tx.settings.retention_days
    if days <= 0:
        return 0, []
    runs = await tx.runs.finished_before(tx.now - days * DAY_S, limit)
    if not runs:
        return 0, []
    deleted = await tx.runs.delete_many([r.id for r in runs])
    payloads = {r.payload for r in runs if r.payload_type == STORE and r.payload}
    outputs = {r.output for r in runs if r.output_type == STORE and r.output}
    # a replay runs with its original's payload: a packet another run still names stays
    still = await tx.runs.packets_in_use(sorted(payloads | outputs))
    return deleted, sorted((payloads | outputs) - still)


async def _compact(tx: Tx, limit: int) -> int:
    raw = await tx.kv.get(WATERMARK)
    after: tuple[float, str] | None = None
    if raw:
        at, run_id = json.loads(raw)
        after = (float(at), str(run_id))
    runs = await tx.runs.finished_between(after, tx.now - tx.settings.compact_after_s, limit)
    if not runs:
        return 0
    await tx.runs.compact_history([r.id for r in runs], PLAIN_EVENTS)
    last = runs[-1]
    await tx.kv.set(WATERMARK, json.dumps([last.completed_at, last.id]))
    return len(runs)
