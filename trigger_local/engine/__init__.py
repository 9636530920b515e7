"""The engine: the run state machine, waitpoints, batches, idempotency, retries, schedules and
timers, as decisions over the store. `Engine` (engine/front.py) is its front; the parts are
modules of functions over a unit of work (engine/unit.py). It never spawns a process: it
records typed events (engine/events.py) and the dispatcher and executors act on them."""

from .attempts import AttemptOutcome
from .front import Engine
from .hub import Hub
from .options import TriggerOptions, TriggerRequest
from .triggering import TriggerResult
from .waitpoints import waitpoint_result
from .waits import WaitDecision

__all__ = ["AttemptOutcome", "Engine", "Hub", "TriggerOptions", "TriggerRequest", "TriggerResult",
           "WaitDecision", "waitpoint_result"]
