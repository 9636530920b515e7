"""The engine: the run state machine, waitpoints, batches, idempotency and retries, as
decisions over the store. It never spawns a process: it publishes on the hub and the
dispatcher and executors act."""

from .checkpoints import CheckpointMixin
from .debounce import DebounceMixin
from .envvars import EnvVarMixin
from .hub import Hub
from .lifecycle import AttemptOutcome
from .queues import QueueLogMixin
from .ratelimits import RateLimitMixin
from .schedules import ScheduleMixin
from .triggering import TriggerRequest, TriggerResult
from .waits import WaitDecision, waitpoint_result
from .workers import WorkerMixin


class Engine(QueueLogMixin, WorkerMixin, CheckpointMixin, ScheduleMixin, RateLimitMixin, DebounceMixin,
             EnvVarMixin):
    """Every operation on runs, waitpoints, queues and versions."""


__all__ = ["AttemptOutcome", "Engine", "Hub", "TriggerRequest", "TriggerResult", "WaitDecision",
           "waitpoint_result"]
