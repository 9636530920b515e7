"""What the engine asks the executor to start a run in the transaction that creates it
(engine/starting.py): a place for the run on a warm process, taken in memory at once, told
the attempt started on it, and given back if the transaction does not commit. The executor
sends the assignment once the run's move to EXECUTING is published, after the commit."""

from __future__ import annotations

from typing import Protocol

from ..store.models import Attempt, Run


class Placement(Protocol):
    """A slot of a warm process taken for one run (counted as busy from the moment it is
    taken, so a dispatcher round meanwhile does not give it away)."""

    @property
    def worker_id(self) -> str: ...

    @property
    def pid(self) -> int | None: ...

    @property
    def executor(self) -> str: ...

    def started(self, run: Run, attempt: Attempt) -> None:
        """`attempt` was started on this place in the transaction, which has not committed
        yet: nothing may be sent before it has (the executor sends the assignment on the
        run's committed `RunStatusChanged` to EXECUTING, published right after the commit)."""

    def release(self) -> None:
        """The transaction did not commit: the slot is free again, as if never taken."""


class Placer(Protocol):
    """The executor's side: a warm process of `version_id` with room for `run` now, or None
    (then the run waits for the dispatcher, as any run)."""

    def place(self, run: Run, version_id: str) -> Placement | None: ...

    def may_place(self, version_id: str, task_id: str) -> bool:
        """Whether `place` would likely find a place for a run of `task_id` now (nothing is
        taken): on a store daemons share, a trigger takes the dequeues' turn only then."""
