"""What the worker protocol's bodies say, read into the engine's terms (api/worker.py's routes):
an attempt's outcome, a wait's due time, log entries. A body that says it wrongly is a 4xx."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ..durations import check_time, parse_time
from ..engine import AttemptOutcome
from ..errors import BadRequestError, ValidationError
from ..limits import MAX_ATTEMPTS
from ..statuses import RunStatus
from ..store.models import LogEntry
from .options import int_option

MAX_RETRY_DELAY_S = 86400.0  # a catch_error retry_at further out is clamped to a day
_FAILURE_STATUSES = (RunStatus.FAILED, RunStatus.CRASHED, RunStatus.TIMED_OUT)


def attempt_outcome(body: dict[str, Any]) -> AttemptOutcome:
    if body.get("ok") is True:
        output = body.get("output")
        if output is not None and not isinstance(output, str):
            raise BadRequestError("output must be a packet string (or null)")
        return AttemptOutcome(ok=True, output=output,
                              output_type=body.get("outputType") or "application/json")
    error = body.get("error")
    if not isinstance(error, dict):
        error = {"message": str(error or "The attempt failed")}
    status = str(body["status"]) if body.get("status") in _FAILURE_STATUSES else "FAILED"
    return AttemptOutcome(ok=False, error=error, retryable=bool(body.get("retry", True)),
                          status=status, retry_delay_s=_retry_delay(body.get("retryDelayS")))


def _retry_delay(value: Any) -> float | None:
    # a task's catch_error picked the delay: a number of seconds, at most a day
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        raise BadRequestError("retryDelayS must be a number of seconds")
    return min(max(0.0, float(value)), MAX_RETRY_DELAY_S)


def until(value: Any, now: float) -> datetime | None:
    """`until` of a wait as a date: the protocol sends epoch seconds (a bare number is a
    duration to the engine), older runtimes a duration or ISO string; 422 naming `until`."""
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(check_time(value, now, what="until"), UTC)
    if not isinstance(value, str):
        raise ValidationError("until must be epoch seconds, a duration or an ISO date, not "
                              f"{str(value)[:40]}")
    return datetime.fromtimestamp(parse_time(value, now, what="until"), UTC)


def _instant(value: Any, default: float) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return check_time(value, default, what="log time")
    if isinstance(value, str) and value:
        try:
            return check_time(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp(),
                              default,
                              what="log time", written=value[:40])
        except ValueError as exc:
            raise ValidationError(f"Invalid log time {value[:40]!r}: use epoch seconds or "
                                  "ISO-8601") from exc
    return default


def log_entries(run_id: str, body: dict[str, Any], attempt: int | None,
                now: float) -> list[LogEntry]:
    entries = body.get("entries")
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise ValidationError("entries must be a list of log objects")
    number = int_option(body.get("attempt"), "attempt", 1,
                        MAX_ATTEMPTS) if body.get("attempt") is not None \
        else attempt
    attributes = [e.get("attributes") for e in entries]
    return [LogEntry(run_id=run_id, attempt=number, at=_instant(e.get("at"), now),
                     level=str(e.get("level") or "info"),
                     message=str(e.get("message", "")), attributes=a if isinstance(a, dict) else {},
                     kind="span" if e.get("kind") == "span" else "log", span_id=e.get("spanId"),
                     parent_span_id=e.get("parentSpanId"),
                     ended_at=_instant(e.get("endedAt"),
                                       now) if e.get("endedAt") is not None else None)
            for e, a in zip(entries, attributes, strict=True)]
