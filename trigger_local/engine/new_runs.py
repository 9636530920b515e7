"""A batch trigger's new runs, written together (issue #13).

A batch of 500 runs wrote each run with an INSERT of its own, then its `run.created` event with
another, and asked for its queue 500 times. `NewRuns` collects the batch's plain new runs — no
idempotency or debounce key, no durable record, no RUN waitpoint: nothing later in the batch
looks them up — and `flush` writes them with one `executemany` of their rows and one of their
events (store/sqlite/run_inserts.py). A request that does look runs up (an idempotency key, a
debounce key) flushes first, so it sees every run made before it in the batch, as when each was
written at once. A queue is ensured once per batch (`ensured`)."""

from __future__ import annotations

from ..store.models import Run
from .runs import created_event
from .unit import Tx


class NewRuns:
    """See the module docstring; one per batch, in its transaction."""

    def __init__(self) -> None:
        self._runs: list[Run] = []
        #: (project, queue) made or found in this batch: it exists for the rest of the batch
        self.ensured: set[tuple[str, str]] = set()

    def add(self, run: Run) -> None:
        self._runs.append(run)

    async def flush(self, tx: Tx) -> None:
        """Insert the runs added since the last flush, then record their `RunCreated`."""
        if not self._runs:
            return
        runs, self._runs = self._runs, []
        await tx.runs.insert_many(runs)
        await tx.record_many([created_event(run) for run in runs])
