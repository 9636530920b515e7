"""Every exception class of trigger-local, in one place, each with its role.

The errors the daemon answers with carry a stable `code`; the API maps it to a status and puts
`{"error": message, "code": code, ...details}` in the body, and the SDK maps the code back to
the class (`error_from_response`), so `except NotFoundError` works on both sides.

    Exception
    ├── TriggerLocalError                 code              HTTP
    │   ├── ValidationError               invalid           422  bad options, durations, tags
    │   │   ├── PayloadTooLargeError      too_large         413
    │   │   └── DuplicateTaskIdError      invalid           (task side: one id, two functions)
    │   ├── BadRequestError               bad_request       400  malformed JSON, bad filters
    │   │   └── AmbiguousProjectError     ambiguous_project 400  a name several projects have
    │   ├── AuthenticationError           unauthorized      401  no key, a wrong key or token
    │   ├── ForbiddenError                forbidden         403  a valid key outside its scope
    │   ├── NotFoundError                 not_found         404  run, task, queue, token, version
    │   │   └── TaskNotFoundError         task_not_found    404
    │   ├── ConflictError                 conflict          409  a transition that lost a race
    │   ├── UnsupportedMediaTypeError     unsupported_media_type 415
    │   ├── DiskFullError                 disk_full         507  the home's disk is full: retry
    │   ├── DaemonStoppingError           stopping          503  the daemon is shutting down
    │   ├── DatabaseUnavailableError      database_unavailable 503 PostgreSQL did not answer
    │   ├── DaemonNotRunningError         daemon_down       (client side only)
    │   ├── DaemonConnectionLostError     daemon_lost       (client side: cut mid-request)
    │   ├── ApiError                      api_error         (client side: any other status)
    │   ├── StartupError                  startup           (daemon side: it cannot start)
    │   ├── DaemonAlreadyRunningError     daemon_running    (daemon side: the home is taken)
    │   └── DaemonFailedError             error             (daemon side: a loop gave up)
    ├── DaemonUnreachableError            (task process: no daemon for the orphan timeout)
    ├── ImportFailure                     (task process: a task file cannot be imported)
    ├── CriuError                         (daemon side: a CRIU command failed)
    ├── DockerCheckpointError             (daemon side: the Docker engine refused a checkpoint)
    ├── SpawnRefused                      (daemon side: no worker can ever start for this run)
    ├── SpawnUnavailable                  (daemon side: no worker can start now; the run waits)
    ├── TransactionLostError              (daemon side: SQLite ended a transaction under a part)
    ├── AbortTaskRunError                 raise it in a task to fail the run without retrying
    ├── WaitTimeoutError                  `WaitResult.unwrap()` on a token that timed out
    └── TaskRunFailedError                `TaskRunResult.unwrap()` on a child that failed
    ValueError
    └── JsonTooDeepError                  JSON nested too deep (callers treat it as invalid JSON)
    EOFError
    └── ProtocolError                     (task process: the daemon's answer is not HTTP/1.1)
    BaseException
    └── AttemptGone                       (task process: the attempt is no longer current)

This module imports nothing of the package: every part may raise these.
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
    def over_limit(cls, what: str, limit: int, size: int | None = None, *,
                   name: str = "payload limit",
                   setting: str | None = PAYLOAD_LIMIT_SETTING) -> PayloadTooLargeError:
        """The one message for every size check against a limit: what was too large, by how
        much, the limit, and the setting that raises it."""
        measured = f"is {size:,} bytes, over" if size is not None else "is over"
        head = f"{what} {measured} the {name} of {limit:,} bytes{_in_units(limit)}"
        raise_it = f", or raise the limit with {setting}" if setting else ""
        return cls(f"{head}. Pass a reference (a path or URL) instead of the data{raise_it}.",
                   limit=limit)


class DuplicateTaskIdError(ValidationError):
    """Two different functions were registered under one task id."""


class BadRequestError(TriggerLocalError):
    code = "bad_request"
    status = 400


class AmbiguousProjectError(BadRequestError):
    """A name (task id, queue) that several projects have, in a request that named no project."""

    code = "ambiguous_project"


class NonDeterministicReplayError(TriggerLocalError):
    """A replayed attempt made its durable calls in another order than recorded (the code
    changed under the run, or its control flow depends on time or randomness): the attempt
    fails, not retried (docs/durability.md)."""

    code = "non_deterministic_replay"
    status = 422


class AuthenticationError(TriggerLocalError):
    code = "unauthorized"
    status = 401


class ForbiddenError(TriggerLocalError):
    """Valid credentials used outside their scope: a public token without the scope, a project
    key acting for another project (Trigger.dev answers 403 here)."""

    code = "forbidden"
    status = 403


class NotFoundError(TriggerLocalError):
    code = "not_found"
    status = 404


class TaskNotFoundError(NotFoundError):
    code = "task_not_found"


class ProjectNotFoundError(NotFoundError):
    """A request named a project (TRIGGER_LOCAL_PROJECT, the project header) that the daemon
    does not serve; `known_projects` lists those it does."""

    code = "project_not_found"


class ConflictError(TriggerLocalError):
    code = "conflict"
    status = 409


class UnsupportedMediaTypeError(TriggerLocalError):
    code = "unsupported_media_type"
    status = 415


class DiskFullError(TriggerLocalError):
    """A write failed because the disk holding the daemon's home is full (SQLite's "database or
    disk is full", ENOSPC). Nothing was changed; the same request succeeds once there is space."""

    code = "disk_full"
    status = 507


class DaemonStoppingError(TriggerLocalError):
    """The daemon is shutting down and no longer serves this request; the next daemon will."""

    code = "stopping"
    status = 503


class DatabaseUnavailableError(TriggerLocalError):
    """The PostgreSQL database did not answer (a cut link, a restarting server): nothing of
    the request was committed, and the same request succeeds once it answers again."""

    code = "database_unavailable"
    status = 503


class TransactionRetryError(DatabaseUnavailableError):
    """PostgreSQL refused a transaction that ran beside another daemon's and touched the same
    records (a serialization failure or a deadlock; docs/scaling.md): nothing of it was
    committed, and the same unit of work succeeds when run again, which the engine does."""


class TransactionLostError(Exception):
    """The store's transaction ended under one part of a shared unit of work: SQLite rolls a
    whole transaction back on some errors (a full disk among them), so nothing the earlier
    parts wrote stands and what later ones would write would commit outside any transaction.
    The store's savepoint raises it with the store's error as `cause`; `GroupCommit` then fails
    the whole batch with that error (engine/unit.py)."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


class DaemonNotRunningError(TriggerLocalError):
    code = "daemon_down"
    status = 503


class DaemonConnectionLostError(TriggerLocalError):
    """The connection to the daemon broke during a request (it was stopped or killed, or a
    kept-alive connection closed as the request went out): whether the request took effect
    is unknown."""

    code = "daemon_lost"
    status = 503


class StartupError(TriggerLocalError):
    """The daemon cannot start (its home, its database, its address): the message says what
    is wrong and what to do, and is all the user sees (no traceback)."""

    code = "startup"


class ApiError(TriggerLocalError):
    code = "api_error"


class UndoPart(Exception):  # noqa: N818 - a signal, not an error
    """Raised inside a savepoint to undo what it wrote, and caught by whoever raised it (the
    hand-over's dequeue, engine/handover.py: `n` runs are taken again); it never leaves the
    engine."""

    def __init__(self, n: int) -> None:
        super().__init__(n)
        self.n = n


class DaemonAlreadyRunningError(TriggerLocalError):
    """Another daemon holds this home's lock (daemon_lock.py)."""

    code = "daemon_running"
    status = 409


class DaemonFailedError(TriggerLocalError):
    """A background loop could not recover: the daemon stopped in order and exits 1."""


# -- the task process's side of the worker protocol -------------------------------------------
class AttemptGone(BaseException):  # noqa: N818 - a signal, not an error
    """The attempt is no longer current (409), or the run ended while it waited: the runtime
    drops the run without completing it. A BaseException so that a task's own
    `except Exception` cannot swallow it."""


class DaemonUnreachableError(Exception):
    """The daemon did not answer for longer than the orphan timeout."""


class ChannelClosed(Exception):  # noqa: N818 - a signal, not an error
    """A shared process's channel is gone (runtime/channel.py): what went over it goes over
    HTTP."""


class ProtocolError(EOFError):
    """The daemon's answer was not HTTP/1.1 we understand (treated as a connection error)."""


class ImportFailure(Exception):
    """A task file could not be imported (or defined something invalid, e.g. a duplicate id)."""

    def __init__(self, file: str, message: str, tb: str, missing: str | None = None) -> None:
        super().__init__(message)
        self.file, self.message, self.traceback = file, message, tb
        self.missing = missing  # a module not found that is not the project's own: a package

    def to_dict(self) -> dict[str, Any]:
        out = {"message": self.message, "file": self.file, "traceback": self.traceback}
        return out if self.missing is None else {**out, "missing": self.missing}


class JsonTooDeepError(ValueError):
    """JSON nested deeper than the limit (a ValueError: callers treat it as invalid JSON)."""

    def __init__(self, depth_limit: int) -> None:
        super().__init__(f"nested deeper than {depth_limit} levels")


# -- the daemon's side of checkpoints --------------------------------------------------------
class CriuError(Exception):
    """A CRIU command failed; the message ends with the tail of its log."""


class DockerCheckpointError(Exception):
    """The Docker engine refused a checkpoint call; the message is the engine's."""


# -- the daemon's side of starting task processes and containers ------------------------------
class SpawnRefused(Exception):
    """A spawner cannot start a worker for this run, now or later (its image is gone): the
    executor fails the run with this message."""


class SpawnUnavailable(Exception):
    """A spawner cannot start a worker right now (the Docker engine went away): the run goes
    back to its queue."""


class StartDeferred(Exception):  # noqa: N818 - a signal, not an error
    """Inside a trigger's transaction, the dispatcher's rules would start another run first:
    the savepoint of the start at once is undone and the run waits for the dispatcher
    (engine/starting.py). Never leaves the engine."""


class HeadTooLarge(Exception):  # noqa: N818 - a signal, not an error
    """Raised in an HTTP parser callback (http_limits.py): the parser stops, and uvicorn answers
    what it reads as a bad request, which there becomes a 431."""


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
        NonDeterministicReplayError,
        AuthenticationError,
        ForbiddenError,
        NotFoundError,
        TaskNotFoundError,
        ProjectNotFoundError,
        ConflictError,
        UnsupportedMediaTypeError,
        DiskFullError,
        DaemonStoppingError,
        DatabaseUnavailableError,
    )
}

#: what a body without a known code means, by its status
_BY_STATUS: dict[int, type[TriggerLocalError]] = {
    400: BadRequestError, 401: AuthenticationError, 403: ForbiddenError, 404: NotFoundError,
    409: ConflictError, 413: PayloadTooLargeError, 415: UnsupportedMediaTypeError,
    422: ValidationError, 507: DiskFullError,
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
        cls = _BY_STATUS.get(status, ApiError)
    err = cls(message, **details)
    if cls is ApiError:
        err.status = status
    return err
