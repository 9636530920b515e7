"""The unit of work: `Tx`, what every engine part receives first.

A `Tx` is one store transaction (its areas: `tx.runs`, `tx.waitpoints`, ...), the time it
happens at (`tx.now`), the engine's long-lived context (`tx.ctx`: settings, projects, the
version cache, whether the executor can checkpoint), and the events it recorded.

`tx.record(event)` is the one way to record a change: it writes the durable `events` row in the
transaction and queues the event, which the engine publishes on the hub once the transaction
has committed (engine/front.py). The events area itself is not on `Tx`: nothing else writes
event rows, and nothing else publishes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..config import DaemonSettings
from ..store.interface import StoreTx
from ..store.models import Version
from .events import Event
from .project_state import Projects
from .suspension import CheckpointCapability


@dataclass
class EngineContext:
    """What the engine parts read besides the store; it outlives every transaction."""

    settings: DaemonSettings
    projects: Projects = field(default_factory=Projects)
    #: versions never change once registered: each is read once (engine/versions.py)
    versions: dict[str, Version] = field(default_factory=dict)
    #: the executor, asked whether a waiting run can be checkpointed (engine/suspension.py)
    capability: CheckpointCapability | None = None


class Tx:
    """One unit of work; see the module docstring."""

    def __init__(self, store: StoreTx, now: float, ctx: EngineContext) -> None:
        self.now = now
        self.ctx = ctx
        self.published: list[Event] = []
        self._events = store.events
        self.runs = store.runs
        self.snapshots = store.snapshots
        self.attempts = store.attempts
        self.timers = store.timers
        self.logs = store.logs
        self.waitpoints = store.waitpoints
        self.batches = store.batches
        self.projects = store.projects
        self.versions = store.versions
        self.queues = store.queues
        self.schedules = store.schedules
        self.rate_limits = store.rate_limits
        self.debounces = store.debounces
        self.env_vars = store.env_vars
        self.workers = store.workers
        self.checkpoints = store.checkpoints
        self.requests = store.requests
        self.kv = store.kv
        self.streams = store.streams

    @property
    def settings(self) -> DaemonSettings:
        return self.ctx.settings

    async def record(self, event: Event) -> None:
        """Store `event` (unless it is a notice) and publish it after the commit."""
        stored_as = event.type
        if stored_as is not None:
            await self._events.append(event.subject_run, stored_as, self.now, event.data())
        self.published.append(event)
