"""The storage interface, part 5: a run's realtime streams — named, ordered lists of chunks a
task writes while it runs (LLM tokens, progress) and readers follow. The contract of
store/run_areas.py holds here too.

A stream is `(run_id, key)`. Its chunks are numbered from 0 in the order they were appended
(their `index`), and are stored as the JSON text they arrived as (each one JSON value).
A writer may name itself (`client_id`) and number its own chunks, so that it can ask after a
lost connection which of its chunks arrived (`last_client_index`) and resend only the rest."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from .models import StreamChunk


class StreamReader(Protocol):
    async def keys(self, run_id: str) -> list[str]:
        """The run's stream keys, in the order they were created (empty: none)."""
        ...

    async def chunks(self, run_id: str, key: str, after: int = -1,
                     limit: int = 1000) -> list[StreamChunk]:
        """The stream's chunks with an index above `after`, in order, at most `limit`."""
        ...

    async def length(self, run_id: str, key: str) -> int:
        """How many chunks the stream holds (0 for a stream that does not exist)."""
        ...

    async def last_client_index(self, run_id: str, key: str, client_id: str) -> int:
        """The highest chunk number writer `client_id` stored in the stream; -1 for none."""
        ...


class StreamStore(StreamReader, Protocol):
    async def create(self, run_id: str, key: str, at: float) -> bool:
        """Make the stream exist (empty). True if it is new, False if it existed."""
        ...

    async def append(self, run_id: str, key: str, data: Sequence[str], at: float,
                     client_id: str | None = None, first_client_index: int = 0) -> int:
        """Append `data` (JSON texts) in order, creating the stream if needed; with
        `client_id`, they are that writer's chunks number `first_client_index`, ... Returns the
        stream's new length."""
        ...

    async def delete_older_than(self, at: float) -> int:
        """Delete the streams (and their chunks) last written before `at`; returns how many."""
        ...
