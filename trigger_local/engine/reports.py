"""What a run reports about itself while it runs: its metadata and its log lines."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from .. import packets
from ..errors import PayloadTooLargeError, ValidationError
from ..limits import MAX_STORED_INT
from ..store.models import LogEntry
from ..strict_json import shown
from .events import RunMetadataChanged
from .log_cap import lines_received
from .runs import get, store_logs
from .unit import Tx

_METADATA_OPS = ("set", "delete", "increment", "append", "remove", "update")


def check_operations(operations: Sequence[Any]) -> list[dict[str, Any]]:
    """Metadata operations as `apply_metadata_operations` needs them; ValidationError naming the
    first bad one (a list as a key, or a string to increment by, would fail half-way)."""
    checked: list[dict[str, Any]] = []
    for number, op in enumerate(operations):
        where = f"operations[{number}]"
        if not isinstance(op, dict) or op.get("type") not in _METADATA_OPS:
            raise ValidationError(f"{where} must be an object whose type is one of "
                                  f"{', '.join(_METADATA_OPS)}")
        if op["type"] != "update" and not isinstance(op.get("key"), str):
            raise ValidationError(f"{where}.key must be a string")
        by = op.get("value", 1)
        if op["type"] == "increment" and (isinstance(by, bool) or not isinstance(by, int | float)
                                          or not abs(by) <= MAX_STORED_INT):  # NaN: not <=
            # the range, and what came (1e308 is finite, and out of it)
            raise ValidationError(f"{where}.value must be a number from -{MAX_STORED_INT:,} to "
                                  f"{MAX_STORED_INT:,} to increment by, not {shown(by)}")
        checked.append(op)
    return checked


async def update_metadata(tx: Tx, run_id: str, metadata: dict[str, Any] | None,
                          operations: Sequence[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Replace the run's metadata (None: keep it) and apply `operations`; returns the result."""
    run = await get(tx.runs, run_id)
    value = dict(run.metadata) if metadata is None else dict(metadata)
    value = packets.apply_metadata_operations(value, check_operations(operations or []))
    limit = tx.settings.payload_limit_bytes
    if (size := len(json.dumps(value))) > limit:
        raise PayloadTooLargeError.over_limit("Metadata", limit, size)
    await tx.runs.update(run.id, None, metadata=value)
    await tx.record(RunMetadataChanged(run_id=run.id))
    return value


async def append_logs(tx: Tx, entries: Sequence[LogEntry], first: int | None = None,
                      recount: bool = False) -> None:
    """Store a burst of log lines and spans (one event per run: the SSE stream expands it), up
    to each attempt's cap (engine/log_cap.py).

    `first`: the burst is one run attempt's and its first line is that attempt's line number
    `first` (from 0): the lines from there on the daemon already holds, or dropped, are not
    counted twice — those of a burst sent again (its channel closed before the answer came,
    docs/worker-protocol.md), or stored from the process's spool while the burst was on its
    way (the process died, executors/assignments.py `store_unsent`). `recount`: what it holds
    is read from the store's count (a commit whose end this daemon missed is in it), not its
    memory's."""
    caps = tx.ctx.log_caps
    if first is not None and entries:
        key = (entries[0].run_id, entries[0].attempt)
        if recount:
            held = await lines_received(tx.logs, caps, *key, tx.log_counts)
        else:
            usage = await caps.current(tx.log_counts, tx.logs, key)
            held = usage.stored_lines + usage.dropped_lines
        entries = entries[max(0, held - first):]
    kept = await caps.admit(tx.log_counts, tx.logs, tx.ctx.settings.log_limit_bytes, entries)
    if kept:
        await store_logs(tx, kept)


