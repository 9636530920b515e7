"""Trigger.dev's camelCase trigger body → the engine's TriggerRequest.

Only shapes are checked here (a number where a number belongs); what the values mean (delay
syntax, tag counts, machines) is the engine's `_validate`, so every caller gets the same rules."""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

from .. import packets
from ..engine import TriggerRequest
from ..engine.debounce import parse_debounce
from ..errors import BadRequestError, ValidationError
from ..limits import (
    MAX_ATTEMPTS,
    MAX_CONCURRENCY_LIMIT,
    MAX_IDEMPOTENCY_KEY_LENGTH,
    MAX_STORED_INT,
    MAX_VERSION_ID_LENGTH,
    check_name,
    check_queue_name,
)
from ..strict_json import shown


def number_option(value: Any, name: str) -> float | None:
    """A finite number (None when absent); ValidationError naming `name` otherwise."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_STORED_INT:
        # finite, but past what is stored: "must be a finite number" misled (10**30 is one)
        raise ValidationError(f"{name} is too large: {shown(value)} (at most "
                              f"{MAX_STORED_INT:,})")
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValidationError(f"{name} must be a finite number, not {shown(value)}")
    return float(value)


def flag_option(value: Any, name: str) -> bool:
    """true or false (false when absent); ValidationError naming `name` otherwise: `"false"`
    is a string, and a string is no flag (it read as true)."""
    if value is None or isinstance(value, bool):
        return bool(value)
    raise ValidationError(f"{name} must be true or false, not {shown(value)}")


def int_option(value: Any, name: str, lo: int, hi: int) -> int | None:
    """A whole number from `lo` to `hi` (None when absent); ValidationError naming `name`
    otherwise."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi \
            or int(value) != value:  # NaN fails the range check before int() could raise
        raise ValidationError(f"{name} must be a whole number from {lo} to {hi}, not "
                              f"{shown(value)}")
    return int(value)


def _str(value: Any, name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValidationError(f"{name} must be a string, not {shown(value)}")
    return value


def payload_packet(payload: Any, payload_type: Any) -> tuple[str | None, str]:
    """The stored (data, type) of a trigger body's payload.

    A string with a type is already a packet (the SDKs serialise themselves); any other JSON
    value, or a string sent without a type by a plain REST caller, is encoded as JSON."""
    if payload_type is not None and not isinstance(payload_type, str):
        raise ValidationError(f"payloadType must be a string, not {shown(payload_type)}")
    if payload is None:
        return None, payload_type or packets.JSON
    if isinstance(payload, str) and payload_type:
        return payload, payload_type
    return json.dumps(payload, separators=(",", ":")), packets.JSON


def _queue(value: Any) -> tuple[str | None, int | None]:
    """`options.queue`: a name, or `{"name", "concurrencyLimit"}` (the limit sets the queue's,
    as Trigger.dev's v3 triggers did)."""
    limit = None
    if isinstance(value, dict):
        try:  # 400, as the queue routes answer for a bad limit
            limit = int_option(value.get("concurrencyLimit"), "options.queue.concurrencyLimit", 0,
                               MAX_CONCURRENCY_LIMIT)
        except ValidationError as exc:
            raise BadRequestError(exc.message, field="options.queue.concurrencyLimit") from None
        value = value.get("name")
    # an empty or blank name is a 400, not the task's own queue: it is a mistake, which no
    # SDK makes (the Node SDK leaves a falsy queue out)
    name = _str(value, "options.queue.name")
    return (None if name is None else check_queue_name(name, "options.queue.name")), limit


def _metadata(options: dict[str, Any]) -> dict[str, Any] | None:
    value = options.get("metadata")
    if isinstance(value, str):  # `metadataType` packets from older clients
        try:
            value = packets.decode(value, options.get("metadataType") or packets.JSON)
        except ValueError as exc:
            raise ValidationError(f"metadata is not valid JSON: {exc}") from exc
    if value is not None and not isinstance(value, dict):
        raise ValidationError("metadata must be a JSON object")
    return value


def _duration(value: Any, name: str) -> Any:
    if value is None or isinstance(value, str) \
            or (isinstance(value, int | float) and not isinstance(value, bool)):
        return value
    raise ValidationError(f"{name} must be a duration string or a number of seconds, not "
                          f"{shown(value)}")


def trigger_request(task_id: str, body: dict[str, Any], headers: Any = None) -> TriggerRequest:
    """Parse one trigger body (`{"payload", "options", ...}`); `headers` adds the REST
    `idempotency-key` / `idempotency-key-ttl` headers when the options have none."""
    options = body.get("options") or {}
    if not isinstance(options, dict):
        raise ValidationError("options must be a JSON object")
    payload, payload_type = payload_packet(body.get("payload"),
                                           options.get("payloadType") or body.get("payloadType"))
    key = _str(options.get("idempotencyKey"), "options.idempotencyKey")
    key_ttl = _str(options.get("idempotencyKeyTTL"), "options.idempotencyKeyTTL")
    if not key and headers is not None and headers.get("idempotency-key"):
        key, key_ttl = headers.get("idempotency-key"), key_ttl or headers.get("idempotency-key-ttl")
    if key:
        check_name(key, "options.idempotencyKey", MAX_IDEMPOTENCY_KEY_LENGTH)
    key_options = options.get("idempotencyKeyOptions")
    user_key = key_options.get("key") if isinstance(key_options, dict) else None
    tags = options.get("tags")
    if tags is not None and not isinstance(tags, str | list):
        raise ValidationError("tags must be a string or a list of strings")
    concurrency_key = options.get("concurrencyKey")
    if concurrency_key is not None:
        if isinstance(concurrency_key, bool) or not isinstance(concurrency_key, str | int | float):
            raise ValidationError("concurrencyKey must be a string or a number")
        concurrency_key = check_name(str(concurrency_key), "options.concurrencyKey")
    queue, queue_limit = _queue(options.get("queue"))
    lock = _str(options.get("lockToVersion"), "options.lockToVersion")
    if lock:
        check_name(lock, "options.lockToVersion", MAX_VERSION_ID_LENGTH)
    return TriggerRequest(
        task_id=task_id, payload=payload, payload_type=payload_type,
        queue=queue, queue_concurrency_limit=queue_limit,
        concurrency_key=concurrency_key,
        delay=_duration(options.get("delay"), "delay"), ttl=_duration(options.get("ttl"), "ttl"),
        idempotency_key=key or None, idempotency_key_user=str(user_key) if user_key else None,
        idempotency_key_ttl=key_ttl, tags=[tags] if isinstance(tags, str) else list(tags or []),
        max_attempts=int_option(options.get("maxAttempts"), "maxAttempts", 1, MAX_ATTEMPTS),
        max_duration=number_option(options.get("maxDuration"), "maxDuration"),
        priority=number_option(options.get("priority"), "priority"),
        machine=_str(options.get("machine"), "machine"), metadata=_metadata(options),
        is_test=flag_option(options.get("test"), "options.test"),
        parent_run_id=_str(options.get("parentRunId"), "parentRunId"),
        resume_parent=flag_option(options.get("resumeParentOnCompletion"),
                                  "options.resumeParentOnCompletion"),
        batch_id=_str(options.get("parentBatch"), "parentBatch"),
        debounce=parse_debounce(options.get("debounce")),
        lock_to_version=lock or None,
    )


def batch_item_key(batch_key: str | None, index: int) -> str | None:
    """An item without its own key inherits one from the batch's (Trigger.dev's rule)."""
    if not batch_key:
        return None
    return hashlib.sha256(f"{batch_key}-{index}".encode()).hexdigest()


def batch_item_request(item: Any, position: int, batch_key: str | None = None) -> TriggerRequest:
    """One item of a batch body: `{"task", "payload"?, "options"?}`."""
    if not isinstance(item, dict):
        raise ValidationError(f"Batch item {position} must be a JSON object")
    task = item.get("task")
    if not isinstance(task, str) or not task:
        raise ValidationError(f"Batch item {position} needs a task id")
    req = trigger_request(task, item)
    if req.idempotency_key is None:
        req.idempotency_key = batch_item_key(batch_key, position)
    return req
