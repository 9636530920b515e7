"""A trigger as the API parsed it (`TriggerRequest`), and as the engine checked it
(`TriggerOptions`, frozen): every option validated before a transaction starts."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .. import limits, packets
from ..config import DaemonSettings
from ..durable_calls import Call
from ..durations import parse_duration, parse_time
from ..errors import BadRequestError, PayloadTooLargeError, ValidationError
from ..machines import check_machine
from ..store.models import TaskDef, Version
from ..strict_json import loads_strict
from .debounce import Debounce

MAX_TAGS = 10
MAX_TAG_LENGTH = 128
MAX_PRIORITY_S = limits.MAX_PRIORITY_S
DEFAULT_IDEMPOTENCY_TTL_S = 30 * 86400


@dataclass
class TriggerRequest:
    """One run to create, as the API parsed it (snake_case of Trigger.dev's options)."""

    task_id: str
    payload: str | None = None
    payload_type: str = packets.JSON
    queue: str | None = None
    #: `options.queue.concurrencyLimit`: sets the run's queue's limit
    queue_concurrency_limit: int | None = None
    concurrency_key: str | None = None
    delay: Any = None
    ttl: Any = None
    idempotency_key: str | None = None
    idempotency_key_user: str | None = None
    idempotency_key_ttl: str | None = None
    tags: list[str] = field(default_factory=list)
    max_attempts: int | None = None
    max_duration: float | None = None
    priority: float | None = None
    machine: str | None = None
    metadata: dict[str, Any] | None = None
    is_test: bool = False
    parent_run_id: str | None = None
    resume_parent: bool = False
    batch_id: str | None = None
    schedule_id: str | None = None
    #: Trigger.dev's debounce option (engine/debounce.py `parse_debounce`)
    debounce: Debounce | None = None
    #: the caller's project (its key, or the project header); None: the parent's project for a
    #: child run, else the one project that has the task (engine/project_state.py)
    project: str | None = None
    #: `options.lockToVersion`: the id of a version of the run's project it runs on (instead
    #: of the project's current one; engine/versions.py `locked_version`)
    lock_to_version: str | None = None
    #: a child triggered by a run as a durable call: recorded with the parent's other calls, and
    #: a replayed call gets the same child back (engine/durable.py)
    record: Call | None = None


@dataclass(frozen=True, slots=True)
class TriggerOptions:
    """The run fields a request's options set, checked."""

    tags: tuple[str, ...] = ()
    #: seconds the run goes ahead of runs queued at the same time
    priority: float = 0.0
    max_duration_s: float | None = None
    delay_until: float | None = None
    ttl_s: float | None = None
    key_ttl_s: float = DEFAULT_IDEMPOTENCY_TTL_S
    metadata: Mapping[str, Any] = field(default_factory=dict)


def validate(req: TriggerRequest, now: float, settings: DaemonSettings) -> TriggerOptions:
    """Check every option of `req`; ValidationError (or PayloadTooLargeError, BadRequestError)
    naming the first bad one."""
    if not req.task_id or not isinstance(req.task_id, str) or len(req.task_id) > 128:
        raise ValidationError("A task id is required (at most 128 characters)")
    _check_payload(req, settings.payload_limit_bytes)
    tags, priority = _tags(req.tags), _priority(req.priority)
    if req.machine is not None:
        check_machine(req.machine)
    if req.max_attempts is not None and (isinstance(req.max_attempts, bool)
                                         or not isinstance(req.max_attempts, int)
                                         or not 1 <= req.max_attempts <= limits.MAX_ATTEMPTS):
        raise ValidationError(f"Invalid max_attempts {req.max_attempts!r}: use a whole number "
                              f"from 1 to {limits.MAX_ATTEMPTS}")
    max_duration = None
    if req.max_duration is not None:
        max_duration = parse_duration(req.max_duration, what="max_duration")
        if max_duration < 1:
            raise ValidationError("max_duration must be at least 1 second")
    delay_until = parse_time(req.delay, now, what="delay") if req.delay not in (None, "") \
        else None
    ttl_s = parse_duration(req.ttl, what="ttl") if req.ttl not in (None, "") else None
    key_ttl_s = (parse_duration(req.idempotency_key_ttl, what="idempotency_key_ttl")
                 if req.idempotency_key_ttl else DEFAULT_IDEMPOTENCY_TTL_S)
    return TriggerOptions(tags=tags, priority=priority,
                          max_duration_s=max_duration, delay_until=delay_until, ttl_s=ttl_s,
                          key_ttl_s=key_ttl_s,
                          metadata=_metadata(req.metadata, settings.payload_limit_bytes))


def _check_payload(req: TriggerRequest, limit: int) -> None:
    size = len(req.payload.encode()) if req.payload else 0
    if size > limit:
        raise PayloadTooLargeError.over_limit("Payload", limit, size)
    if req.payload and req.payload_type in (packets.JSON, packets.SUPER_JSON):
        try:
            loads_strict(req.payload, "Payload", "payload")
        except BadRequestError as exc:
            raise BadRequestError(f"{str(exc).rstrip('.')}. Send JSON, or set the payload type "
                                  "to text/plain for a plain string.") from None


def _tags(value: Any) -> tuple[str, ...]:
    tags = [value] if isinstance(value, str) else list(value or [])
    if len(tags) > MAX_TAGS:
        raise ValidationError(f"Runs can only have {MAX_TAGS} tags, you're trying to set "
                              f"{len(tags)}.")
    for tag in tags:
        if not isinstance(tag, str) or not tag or len(tag) > MAX_TAG_LENGTH:
            raise ValidationError(f"Each tag must be a string of 1 to {MAX_TAG_LENGTH} "
                                  f"characters: {tag!r}")
        limits.check_name(tag, "tags", MAX_TAG_LENGTH)
    return tuple(tags)


def _priority(value: Any) -> float:
    priority = value or 0
    if isinstance(priority, bool) or not isinstance(priority, int | float) \
            or not 0 <= priority <= MAX_PRIORITY_S:
        raise ValidationError(f"Invalid priority {value}: use seconds from 0 to {MAX_PRIORITY_S}")
    return float(priority)


def _metadata(value: Any, limit: int) -> dict[str, Any]:
    metadata = value or {}
    if not isinstance(metadata, dict):
        raise ValidationError("metadata must be a JSON object")
    if (size := len(json.dumps(metadata))) > limit:
        raise PayloadTooLargeError.over_limit("Metadata", limit, size)
    return metadata


def validate_payload_schema(task: TaskDef, req: TriggerRequest) -> None:
    """A task with a JSON schema refuses a payload that does not match it (422 listing every
    issue)."""
    if not task.schema:
        return
    import jsonschema  # only schema tasks pay for the import

    try:
        value = packets.decode(req.payload, req.payload_type)
    except ValueError as exc:
        raise ValidationError(f"Payload is not valid JSON: {exc}") from exc
    validator = jsonschema.Draft202012Validator(task.schema)
    errors = sorted(validator.iter_errors(value), key=lambda e: list(e.path))
    if errors:
        issues = [{"path": ".".join(str(p) for p in e.path) or "(root)", "message": e.message}
                  for e in errors]
        first = issues[0]
        raise ValidationError(f"Payload does not match the schema of task {task.task_id!r}: "
                              f"{first['path']}: {first['message']}", issues=issues)


def task_default(version: Version | None, task: TaskDef | None, name: str) -> Any:
    """The task's `machine` or `max_duration_s`, else its project's (trigger.toml), else None."""
    if task is None:
        return None
    own = getattr(task, name)
    if own is not None or version is None:
        return own
    return getattr(version.defaults, name)
