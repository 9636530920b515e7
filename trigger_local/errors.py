"""Every error trigger-local raises on purpose, with a stable code.

    TriggerLocalError                 code            HTTP
    ├── ValidationError               invalid         422  bad options, durations, tags, payloads
    │   └── PayloadTooLargeError      too_large       413
    ├── BadRequestError               bad_request     400  malformed JSON, bad filters
    │   └── AmbiguousProjectError     ambiguous_project 400 a task or queue name several projects have
    ├── AuthenticationError           unauthorized    401
    ├── NotFoundError                 not_found       404  run, task, queue, token, version
    │   └── TaskNotFoundError         task_not_found  404
    ├── ConflictError                 conflict        409  a transition that lost a race
    ├── DiskFullError                 disk_full       507  the home's disk is full: free space, retry
    ├── DaemonStoppingError           stopping        503  the daemon is shutting down: retry later
    ├── DaemonNotRunningError         daemon_down     (client side only)
    ├── StartupError                  startup         (daemon side: the daemon cannot start)
    └── ApiError                      api_error       (client side: any other status)

Inside tasks:
    AbortTaskRunError   raise it to fail the run without retrying
    WaitTimeoutError    `WaitResult.unwrap()` on a token that timed out
    TaskRunFailedError  `TaskRunResult.unwrap()` on a child that failed

The API maps `code` to a status and puts `{"error": message, "code": code}` in the body; the
SDK maps the code back to the class, so `except NotFoundError` works on both sides.
"""

from __future__ import annotations

from typing import Any


class TriggerLocalError(Exception):
    code = "error"
    status = 500

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_body(self) -> dict[str, Any]:
        return {"error": self.message, "code": self.code, **self.details}


class ValidationError(TriggerLocalError):
    code = "invalid"
    status = 422


#: the setting that changes the payload limit (docs/configuration.md)
PAYLOAD_LIMIT_SETTING = "TRIGGER_LOCAL_PAYLOAD_LIMIT_BYTES"


def _in_units(n: int) -> str:
    """` (3.0 MiB)` after a byte count, when a unit says it better."""
    for unit, scale in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f" ({n / scale:.1f} {unit})"
    return ""


class PayloadTooLargeError(ValidationError):
    code = "too_large"
    status = 413

    @classmethod
    def over_limit(cls, what: str, limit: int, size: int | None = None, *, name: str = "payload limit",
                   setting: str | None = PAYLOAD_LIMIT_SETTING) -> PayloadTooLargeError:
        """The one message for every size check against a limit: what was too large, by how
        much, the limit, and the setting that raises it."""
        measured = f"is {size:,} bytes, over" if size is not None else "is over"
        head = f"{what} {measured} the {name} of {limit:,} bytes{_in_units(limit)}"
        raise_it = f", or raise the limit with {setting}" if setting else ""
        return cls(f"{head}. Pass a reference (a path or URL) instead of the data{raise_it}.", limit=limit)


class BadRequestError(TriggerLocalError):
    code = "bad_request"
    status = 400


class AmbiguousProjectError(BadRequestError):
    """A name (task id, queue) that several projects have, in a request that named no project."""

    code = "ambiguous_project"


class AuthenticationError(TriggerLocalError):
    code = "unauthorized"
    status = 401


class NotFoundError(TriggerLocalError):
    code = "not_found"
    status = 404


class TaskNotFoundError(NotFoundError):
    code = "task_not_found"


class ConflictError(TriggerLocalError):
    code = "conflict"
    status = 409


class DiskFullError(TriggerLocalError):
    """A write failed because the disk holding the daemon's home is full (SQLite's "database or
    disk is full", ENOSPC). Nothing was changed; the same request succeeds once there is space."""

    code = "disk_full"
    status = 507


class DaemonStoppingError(TriggerLocalError):
    """The daemon is shutting down and no longer serves this request; the next daemon will."""

    code = "stopping"
    status = 503


class DaemonNotRunningError(TriggerLocalError):
    code = "daemon_down"
    status = 503


class StartupError(TriggerLocalError):
    """The daemon cannot start (its home, its database, its address): the message says what
    is wrong and what to do, and is all the user sees (no traceback)."""

    code = "startup"


class ApiError(TriggerLocalError):
    code = "api_error"


class AbortTaskRunError(Exception):
    """Raise inside a task to fail the run at once: no further attempts are made."""


class WaitTimeoutError(Exception):
    """A waitpoint token timed out before anyone completed it."""


class TaskRunFailedError(Exception):
    """A child run did not complete successfully; `error` holds what it reported."""

    def __init__(self, message: str, error: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.error = error or {}


_BY_CODE: dict[str, type[TriggerLocalError]] = {
    cls.code: cls
    for cls in (
        ValidationError,
        PayloadTooLargeError,
        BadRequestError,
        AmbiguousProjectError,
        AuthenticationError,
        NotFoundError,
        TaskNotFoundError,
        ConflictError,
        DiskFullError,
        DaemonStoppingError,
    )
}


def error_from_response(status: int, body: Any) -> TriggerLocalError:
    """Rebuild the error the daemon raised from its JSON body (client side)."""
    if isinstance(body, dict):
        message = body.get("error")
        if isinstance(message, dict):
            message = message.get("message")
        code = body.get("code")
        details = {k: v for k, v in body.items() if k not in ("error", "code")}
    else:
        message, code, details = None, None, {}
    message = str(message or f"HTTP {status}")
    cls = _BY_CODE.get(str(code)) if code else None
    if cls is None:
        cls = {400: BadRequestError, 401: AuthenticationError, 404: NotFoundError,
               409: ConflictError, 413: PayloadTooLargeError, 422: ValidationError,
               507: DiskFullError}.get(status, ApiError)
    err = cls(message, **details)
    if cls is ApiError:
        err.status = status
    return err
