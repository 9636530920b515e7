"""What the engine asks the executor to start a run in the transaction that creates it
(engine/starting.py): a place for the run on a warm process, taken in memory at once, and
handed the run's attempt once that transaction has committed (or given back if it did not)."""

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

    def hand(self, run: Run, attempt: Attempt) -> None:
        """The transaction that started `attempt` committed: send the process its assignment
        (or, if the process went away meanwhile, leave the run to the exit's worker-lost path,
        which knows it from `place`)."""

    def release(self) -> None:
        """The transaction did not commit: the slot is free again, as if never taken."""


class Placer(Protocol):
    """The executor's side: a warm process of `version_id` with room for `run` now, or None
    (then the run waits for the dispatcher, as any run)."""

    def place(self, run: Run, version_id: str) -> Placement | None: ...
