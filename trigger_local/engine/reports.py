"""What a run reports about itself while it runs: its metadata and its log lines."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

from .. import packets
from ..errors import PayloadTooLargeError, ValidationError
from ..store.models import LogEntry
from .events import RunLogsAppended, RunMetadataChanged
from .runs import get
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
                                          or not math.isfinite(by) or abs(by) > 2**53):
            raise ValidationError(f"{where}.value must be a finite number to increment by")
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


async def append_logs(tx: Tx, entries: Sequence[LogEntry]) -> None:
    """Store a burst of log lines and spans (one event per run: the SSE stream expands it)."""
    counts: dict[str, int] = {}
    for entry in entries:
        counts[entry.run_id] = counts.get(entry.run_id, 0) + 1
    # one writer, so this burst's ids are the next ones above `after_id`
    after_id = await tx.logs.last_id()
    await tx.logs.append(entries)
    for run_id, count in counts.items():
        await tx.record(RunLogsAppended(run_id=run_id, after_id=after_id, count=count))
