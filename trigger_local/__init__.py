"""trigger-local: Trigger.dev for Python, on one machine, offline.

    from trigger_local import (task, schema_task, schedules, queue, Retry, wait, logger,
                               metadata, tasks, runs, step)

Every call that talks to the daemon is async; its blocking twin has the same name with a
`_sync` suffix (`trigger_sync`, `runs.retrieve_sync`, `wait.for_sync`, …).
"""

__version__ = "0.1.0"

from .errors import (  # noqa: E402
    AbortTaskRunError,
    DaemonNotRunningError,
    NotFoundError,
    TaskRunFailedError,
    TriggerLocalError,
    ValidationError,
    WaitTimeoutError,
)
from .sdk.context import Context  # noqa: E402
from .sdk.hooks import LocalKey, locals  # noqa: E402
from .sdk.logger import logger  # noqa: E402
from .sdk.management import queues, runs  # noqa: E402
from .sdk.metadata import metadata  # noqa: E402
from .sdk.options import IdempotencyKey, Queue, idempotency_keys, queue  # noqa: E402
from .sdk.registry import schema_task, task  # noqa: E402
from .sdk.results import BatchHandle, RunHandle, TaskRunResult, Token, WaitResult  # noqa: E402
from .sdk.retry import Retry  # noqa: E402
from .sdk.schedules import ScheduledPayload, schedules  # noqa: E402
from .sdk.steps import step  # noqa: E402
from .sdk.streams import streams  # noqa: E402
from .sdk.tasks import Task, tasks  # noqa: E402
from .sdk.waits import wait  # noqa: E402

__all__ = [
    "AbortTaskRunError", "BatchHandle", "Context", "DaemonNotRunningError", "IdempotencyKey",
    "NotFoundError", "Queue", "Retry", "RunHandle", "ScheduledPayload", "Task",
    "TaskRunFailedError", "TaskRunResult", "Token", "TriggerLocalError", "ValidationError",
    "LocalKey", "WaitResult", "WaitTimeoutError", "__version__", "idempotency_keys", "locals",
    "logger", "metadata", "queue", "queues", "runs", "schedules", "schema_task", "step",
    "streams", "task", "tasks", "wait",
]
