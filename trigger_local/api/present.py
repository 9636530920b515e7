"""Records → the JSON shapes Trigger.dev's client validates (TRIGGER_API.md §4–§7).

The client's zod schemas reject `null` for optional keys, so absent values are left out
(`_put`), except the few fields the schemas declare nullable."""

from __future__ import annotations

import json
from typing import Any

from .. import packets
from ..durations import iso
from ..engine.cron import describe
from ..statuses import QUEUED_STATUSES, RUNNING_STATUSES
from ..store.models import (
    CANCELED,
    COMPLETED,
    EXECUTING,
    EXPIRED,
    FINAL_STATUSES,
    INTERRUPTED,
    WAITING,
    WP_TIMED_OUT,
    Attempt,
    Batch,
    Queue,
    Run,
    Schedule,
    Waitpoint,
)

# Trigger.dev's server leaves EXPIRED and TIMED_OUT out of "completed", which makes the SDK's
# `runs.poll` spin on such runs until it gives up; here every final status is completed
_COMPLETED = FINAL_STATUSES
_ATTEMPT_STATUS: dict[str, str] = {EXECUTING: "EXECUTING", COMPLETED: "COMPLETED",
                                   CANCELED: "CANCELED", INTERRUPTED: "INTERRUPTED"}
ENV = {"id": "env_local", "name": "dev"}


def _put(out: dict[str, Any], key: str, value: Any) -> None:
    if value is not None:
        out[key] = value


def decode_or_raw(data: str | None, data_type: str | None) -> Any:
    try:
        return packets.decode(data, data_type)
    except ValueError:
        return data  # a packet we cannot parse is still worth showing


def trigger_function(run: Run) -> str:
    if run.batch_id:
        return "batchTriggerAndWait" if run.resume_parent else "batchTrigger"
    return "triggerAndWait" if run.resume_parent else "trigger"


def run_common(run: Run, now: float) -> dict[str, Any]:
    status = run.status
    completed = status in _COMPLETED
    out: dict[str, Any] = {
        "id": run.id, "status": status, "taskIdentifier": run.task_id,
        "isQueued": status in QUEUED_STATUSES, "isExecuting": status in RUNNING_STATUSES,
        "isWaiting": status == WAITING, "isCompleted": completed,
        "isSuccess": status == COMPLETED, "isFailed": completed and status != COMPLETED,
        "isCancelled": status == CANCELED, "isTest": run.is_test,
        "createdAt": iso(run.created_at), "updatedAt": iso(run.updated_at),
        "tags": sorted(run.tags), "costInCents": 0, "baseCostInCents": 0,
        "durationMs": int(((run.completed_at or now) - run.started_at) * 1000)
        if run.started_at else 0,
        "metadata": run.metadata or {}, "taskKind": "SCHEDULED" if run.schedule_id else "STANDARD",
        "depth": run.depth,
        "queue": run.queue, "attemptCount": run.counted_attempts,
    }
    _put(out, "project", run.project)
    _put(out, "idempotencyKey", run.idempotency_key_user or run.idempotency_key)
    _put(out, "version", run.version_id)
    _put(out, "startedAt", iso(run.started_at))
    _put(out, "finishedAt", iso(run.completed_at) if run.is_final else None)
    _put(out, "delayedUntil", iso(run.delay_until))
    _put(out, "expiredAt", iso(run.completed_at) if status == EXPIRED else None)
    if run.expires_at is not None:
        out["ttl"] = f"{max(0, round(run.expires_at - run.created_at))}s"
    _put(out, "concurrencyKey", run.concurrency_key)
    _put(out, "machine", run.machine)
    return out


def related(run: Run, now: float) -> dict[str, Any]:
    out = run_common(run, now)
    out["triggerFunction"] = trigger_function(run)
    _put(out, "batchId", run.batch_id)
    return out


def run_error(error: dict[str, Any]) -> dict[str, Any]:
    message = error.get("message") or error.get("name") or "Unknown error"
    out: dict[str, Any] = {"message": str(message)}
    _put(out, "name", error.get("name"))
    _put(out, "stackTrace", error.get("stackTrace") or error.get("stack"))
    return out


def attempt_items(attempts: list[Attempt]) -> list[dict[str, Any]]:
    """A run's attempts, numbered as the task saw them: an interrupted attempt (status
    `INTERRUPTED`, `counts: false`) does not count, and the try after it has its number."""
    out, counted = [], 0
    for attempt in attempts:
        out.append(attempt_item(attempt, counted + 1))
        counted += attempt.counts
    return out


def attempt_item(attempt: Attempt, number: int | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"id": attempt.id, "number": attempt.number if number is None
                           else number, "counts": attempt.counts,
                           "status": _ATTEMPT_STATUS.get(attempt.status, "FAILED"),
                           "rawStatus": attempt.status, "createdAt": iso(attempt.started_at),
                           "startedAt": iso(attempt.started_at),
                           "updatedAt": iso(attempt.finished_at or attempt.started_at)}
    _put(out, "completedAt", iso(attempt.finished_at))
    if attempt.error:
        out["error"] = run_error(attempt.error)
    return out


def cron_generator(expression: str) -> dict[str, str]:
    """How Trigger.dev shows a schedule's cron, in schedules and in the runs they trigger."""
    return {"type": "CRON", "expression": expression, "description": describe(expression)}


def run_retrieve(run: Run, now: float, *, attempts: list[Attempt], parent: Run | None,
                 root: Run | None, children: list[Run], schedule: Schedule | None = None,
                 status_reason: str | None = None) -> dict[str, Any]:
    """`runs.retrieve`: the common fields plus payload, output, error, attempts and relatives,
    the schedule that triggered it (omitted once that schedule is deleted), and (ours)
    `statusReason`: why a run that has not started waits, when its queue is not the reason."""
    out = related(run, now)
    _put(out, "statusReason", status_reason)
    if schedule is not None:
        out["schedule"] = {"id": schedule.id, "generator": cron_generator(schedule.cron)}
        _put(out["schedule"], "externalId", schedule.external_id)
        _put(out["schedule"], "deduplicationKey", schedule.deduplication_key)
    if run.payload is not None and run.payload_type != "application/store":
        out["payload"] = decode_or_raw(run.payload, run.payload_type)
    if run.status == COMPLETED and run.output is not None:
        out["output"] = decode_or_raw(run.output, run.output_type)
    if run.error and run.status != COMPLETED:
        out["error"] = run_error(run.error)
    rel: dict[str, Any] = {}
    if root is not None:
        rel["root"] = related(root, now)
    if parent is not None:
        rel["parent"] = related(parent, now)
    if children:
        rel["children"] = [related(c, now) for c in children]
    out["relatedRuns"] = rel
    out["attempts"] = attempt_items(attempts)
    return out


def list_item(run: Run, now: float) -> dict[str, Any]:
    out = run_common(run, now)
    out["env"] = ENV
    return out


def token_output(wp: Waitpoint) -> tuple[str | None, str]:
    # the engine stores §6.4's shape; older rows lack it
    if wp.status == WP_TIMED_OUT and not wp.output:
        at = iso(wp.timeout_at or wp.completed_at)
        return json.dumps({"code": "TRIGGER_WAITPOINT_TIMEOUT",
                           "message": f"Waitpoint timed out at {at}"}), \
            packets.JSON
    return wp.output, wp.output_type or packets.JSON


def token_item(wp: Waitpoint, url: str, *, with_output: bool = False,
               blocked_run_ids: list[str] | None = None) -> dict[str, Any]:
    """Trigger.dev's token shape, plus `blockedRunIds` (ours) when given: the runs that
    waited or wait on the token."""
    out: dict[str, Any] = {"id": wp.id, "url": url, "status": wp.status, "tags": sorted(wp.tags),
                           "createdAt": iso(wp.created_at)}
    if blocked_run_ids is not None:
        out["blockedRunIds"] = blocked_run_ids
    _put(out, "completedAt", iso(wp.completed_at))
    _put(out, "timeoutAt", iso(wp.timeout_at))
    _put(out, "completedAfter", iso(wp.timeout_at))
    _put(out, "idempotencyKey", wp.idempotency_key)
    _put(out, "idempotencyKeyExpiresAt", iso(wp.idempotency_expires_at))
    if with_output and wp.status != "WAITING":
        output, output_type = token_output(wp)
        _put(out, "output", output)
        out["outputType"] = output_type
        out["outputIsError"] = wp.status == WP_TIMED_OUT or wp.output_is_error
    return out


def queue_item(queue: Queue, base_limit: int | None) -> dict[str, Any]:
    limit = queue.concurrency_limit
    is_task = queue.type == "task" and queue.name.startswith("task/")
    return {"id": queue.id, "project": queue.project,
            "name": queue.name[len("task/"):] if is_task else queue.name,
            "type": "task" if is_task else "custom", "running": queue.running,
            "queued": queue.queued, "paused": queue.paused, "concurrencyLimit": limit,
            "concurrency": {"current": limit, "base": base_limit,
                            "override": limit if limit != base_limit else None,
                            "overriddenAt": None, "overriddenBy": None}}


def batch_item(batch: Batch, runs: list[Run]) -> dict[str, Any]:
    out: dict[str, Any] = {"id": batch.id, "status": batch.status,
                           "createdAt": iso(batch.created_at),
                           "updatedAt": iso(max([batch.created_at, *[r.updated_at for r in runs]])),
                           "runCount": batch.run_count, "runs": batch.run_ids,
                           "processing": {"errors": []}}
    _put(out, "idempotencyKey", batch.idempotency_key)
    return out
