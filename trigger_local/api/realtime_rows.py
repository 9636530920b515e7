"""A run as a realtime row: the `value` of an Electric shape message, in the shape
@trigger.dev/sdk 4.8.3 parses (`SubscribeRunRawShape`; research notes §1.5–§1.6).

Rows are typed JSON under an empty `electric-schema` (numbers, booleans, arrays and the error
object as JSON, not Postgres text), which the client reads the same way as Electric's text
encoding. Three rules the client imposes:
- statuses are Trigger.dev's internal names (`COMPLETED_SUCCESSFULLY`, ...): the client maps
  them back to the public ones, and any name it does not know becomes QUEUED;
- times are naive UTC without a zone (the client appends `Z` itself);
- `completedAt` is set on every final status: it is what ends `subscribeToRun`.

`format=run` (ours, what the Python SDK asks for) sends the REST run object instead (the
shape `runs.retrieve` answers, with `realtimeStreams`), so Python callers get the same dicts
from a subscription as from `runs.retrieve`."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from .. import packet_store
from ..statuses import RunStatus
from ..store.models import COMPLETED, Run
from .present import decode_or_raw, related, run_error

#: public status -> the internal name the client maps back to it (the rest are the same)
WIRE_STATUS: dict[str, str] = {RunStatus.QUEUED: "PENDING",
                               RunStatus.COMPLETED: "COMPLETED_SUCCESSFULLY",
                               RunStatus.FAILED: "COMPLETED_WITH_ERRORS",
                               RunStatus.WAITING: "WAITING_TO_RESUME"}
#: columns a caller may not drop with `skipColumns` (the client requires them)
REQUIRED_COLUMNS = frozenset({"id", "friendlyId", "taskIdentifier", "status", "createdAt",
                              "updatedAt"})
_ERROR_TYPES = ("BUILT_IN_ERROR", "CUSTOM_ERROR", "STRING_ERROR", "INTERNAL_ERROR")


def naive_utc(ts: float | None) -> str | None:
    if ts is None or ts != ts:
        return None
    try:
        at = datetime.fromtimestamp(ts, UTC)
    except (OverflowError, OSError, ValueError):
        return None
    return at.replace(tzinfo=None).isoformat(timespec="milliseconds")


def task_run_error(error: dict[str, Any]) -> dict[str, Any]:
    """Our stored error as Trigger.dev's `TaskRunError` (a BUILT_IN_ERROR unless it says)."""
    if error.get("type") in _ERROR_TYPES and error["type"] != "BUILT_IN_ERROR":
        return {k: v for k, v in error.items() if v is not None}
    shown = run_error(error)
    return {"type": "BUILT_IN_ERROR", "name": shown.get("name") or "Error",
            "message": shown["message"], "stackTrace": str(shown.get("stackTrace") or "")}


def _packet(data: str | None, data_type: str | None) -> tuple[str | None, str | None]:
    # a packet kept in the packet store would need a download the daemon does not offer
    # through realtime: leave it out (the client then shows it as undefined)
    if data is None or data_type == packet_store.STORE:
        return None, None
    return data, data_type


def electric_row(run: Run, streams: list[str],
                 skip: frozenset[str] = frozenset()) -> dict[str, Any]:
    payload, payload_type = _packet(run.payload, run.payload_type)
    output, output_type = _packet(run.output, run.output_type) if run.status == COMPLETED \
        else (None, None)
    final = run.is_final
    row: dict[str, Any] = {
        "id": run.id, "friendlyId": run.id, "taskIdentifier": run.task_id,
        "status": WIRE_STATUS.get(run.status, run.status), "number": 0, "isTest": run.is_test,
        "createdAt": naive_utc(run.created_at), "updatedAt": naive_utc(run.updated_at),
        "startedAt": naive_utc(run.started_at), "delayUntil": naive_utc(run.delay_until),
        "queuedAt": naive_utc(run.created_at),
        "expiredAt": naive_utc(run.completed_at) if run.status == RunStatus.EXPIRED else None,
        "completedAt": naive_utc(run.completed_at or run.updated_at) if final else None,
        "idempotencyKey": run.idempotency_key_user or run.idempotency_key,
        "usageDurationMs": _duration_ms(run), "costInCents": 0, "baseCostInCents": 0,
        "ttl": None, "payload": payload, "payloadType": payload_type,
        "metadata": _json(run.metadata) if run.metadata else None,
        "metadataType": "application/json" if run.metadata else None,
        "output": output, "outputType": output_type, "runTags": sorted(run.tags),
        "error": task_run_error(run.error) if run.error and run.status != COMPLETED else None,
        "realtimeStreams": streams,
    }
    return {k: v for k, v in row.items() if k not in skip}


def python_row(run: Run, streams: list[str], now: float) -> dict[str, Any]:
    out = related(run, now)
    if run.payload is not None and run.payload_type != packet_store.STORE:
        out["payload"] = decode_or_raw(run.payload, run.payload_type)
    if run.status == COMPLETED and run.output is not None:
        out["output"] = decode_or_raw(run.output, run.output_type)
    if run.error and run.status != COMPLETED:
        out["error"] = run_error(run.error)
    out["realtimeStreams"] = streams
    return out


def _duration_ms(run: Run) -> int:
    if run.started_at is None:
        return 0
    return max(0, int(((run.completed_at or run.updated_at) - run.started_at) * 1000))


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))
