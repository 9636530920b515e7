"""Retention (issue #17): runs that finished more than `retention_days` ago are deleted, with
everything that hangs off them (store `runs.delete_many`), a small batch per unit of work so
that no transaction holds the writer long; the daemon's retention loop calls it over and over
(trigger_local/retention.py)."""

from __future__ import annotations

from ..packet_store import STORE
from .unit import Tx

DAY_S = 86_400.0


async def prune(tx: Tx, limit: int) -> tuple[int, list[str]]:
    """Delete up to `limit` runs finished before the retention period: (how many, the
    offloaded packets that only they named, for the caller to delete after the commit)."""
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
