"""The storage interface, part 5: a run's durable records (`steps`), what replay walks
(docs/durability.md). Same contract as the other areas: `get` of a missing record is None, an
update that matched no row is False."""

from __future__ import annotations

from typing import Any, Protocol

from .models import RunStep


class StepReader(Protocol):
    async def for_run(self, run_id: str) -> list[RunStep]:
        """The run's records in `seq` order (empty when it has none)."""
        ...

    async def get(self, run_id: str, seq: int) -> RunStep | None: ...


class StepStore(StepReader, Protocol):
    async def insert(self, step: RunStep) -> bool:
        """Add a record; False (and nothing changed) when the run already has one at its seq."""
        ...

    async def update(self, run_id: str, seq: int, **changes: Any) -> bool:
        """Change a record's status, result, ids or completion time."""
        ...
