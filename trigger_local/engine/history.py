"""A run's snapshots as readers show them (the trace, `runs show`): one per change of status.

A change's history is its event row (engine/runs.py): the event's data names the snapshot it
made (`snapshot_id`, and its `description` when it has one). A database written before that
(issue #13) also holds `snapshots` rows for the changes made then: both are read, oldest first.

Compaction (engine/retention.py) deletes a finished run's snapshot rows and its plain status
events, but keeps the events that say more than a status (`run.waiting`, `run.retrying`, …),
which name snapshots too. A finished run whose own last change (its current snapshot) is no
longer among its events was compacted: it shows no snapshot from the events that were kept,
as it showed none before — the run row says where it ended (api/traces.py `snapshots_json`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..store.interface import StoreReader
from ..store.models import Run, StoredEvent

#: the run's events read at most (the trace reads as many)
EVENTS_READ = 10_000


def from_events(events: Sequence[StoredEvent]) -> list[dict[str, Any]]:
    """The snapshots the events name, in their order."""
    return [{"id": e.data["snapshot_id"], "run_id": e.run_id, "kind": e.data.get("kind"),
             "status": e.data.get("status"), "at": e.at,
             "description": str(e.data.get("description") or "")}
            for e in events if e.data.get("snapshot_id")]


async def snapshots(read: StoreReader, run: Run,
                    events: Sequence[StoredEvent] | None = None) -> list[dict[str, Any]]:
    """`run`'s snapshots, oldest first: `{id, run_id, kind, status, at, description}` (the
    `snapshots` rows of a database written before, then those its `events` name — pass them
    when they were read already)."""
    if events is None or len(events) >= EVENTS_READ:
        events = await _all_events(read, run.id)  # a long run's: past the first page too
    named = from_events(events)
    if run.is_final and not any(s["id"] == run.snapshot_id for s in named):
        named = []  # compacted: the module docstring
    rows = [*await read.snapshots.for_run(run.id), *named]
    rows.sort(key=lambda s: s["at"])  # stable: the order they were written in, within a time
    return rows


async def _all_events(read: StoreReader, run_id: str) -> list[StoredEvent]:
    """Every event of the run, a page at a time (the snapshots' are among them all)."""
    out: list[StoredEvent] = []
    seq = 0
    while True:
        page = await read.events.after(seq, EVENTS_READ, run_id)
        out += [e for e in page if e.data.get("snapshot_id")]
        if len(page) < EVENTS_READ:
            return out
        seq = page[-1].seq
