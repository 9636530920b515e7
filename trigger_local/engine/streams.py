"""A run's realtime streams: what a task writes for readers to follow (store/stream_areas.py).

Creating a stream records `run.stream` (durable: the run's `realtimeStreams` grew, which
realtime subscribers are sent); appending chunks publishes `StreamAppended`, a notice that wakes
the stream's readers: the chunks themselves are the durable record, so an event row per chunk
would only double the writes. Streams not written for `stream_retention_s` are deleted when a
new stream is created, so retention costs no timer."""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import ValidationError
from .events import RunStreamCreated, StreamAppended
from .runs import get
from .unit import Tx


async def append(tx: Tx, run_id: str, key: str, data: Sequence[str],
                 client_id: str | None = None, first_client_index: int = 0) -> int:
    """Append `data` (JSON texts) to stream `key` of the run, creating it if needed (empty
    `data`: only create it); returns the stream's length. NotFoundError for an unknown run,
    ValidationError for a run that has finished."""
    run = await get(tx.runs, run_id)
    if run.is_final:
        raise ValidationError(f"Cannot write to stream {key!r}: run {run_id} has finished "
                              f"({run.status})")
    if await tx.streams.create(run_id, key, tx.now):
        await tx.streams.delete_older_than(tx.now - tx.settings.stream_retention_s)
        await tx.record(RunStreamCreated(run_id=run_id, key=key))
    if not data:
        return await tx.streams.length(run_id, key)
    length = await tx.streams.append(run_id, key, data, tx.now, client_id, first_client_index)
    await tx.record(StreamAppended(run_id=run_id, key=key, length=length))
    return length
