"""`streams`: a run's realtime streams, as in Trigger.dev v4 (docs/realtime.md).

In a task, `streams.pipe(key, source)` sends each chunk of an (async) iterable to stream `key`
while handing it on to the task, and `streams.append(key, value)` sends one chunk; both buffer
and return at once (sdk/stream_writer.py sends in batches, and every chunk is stored before the
run completes or waits). The key may be left out: the stream is then "default".
`streams.define(id)` gives a typed stream object with the same methods. From anywhere,
`streams.read(run_id, key)` follows a stream from any index, live, until its run has finished.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from typing import Any, Generic, TypeVar

from .context import require_run
from .realtime import blocking, read_stream

T = TypeVar("T")
DEFAULT_STREAM = "default"
_MISSING: Any = object()


def _write(key: str, value: Any, what: str) -> None:
    require_run(what).streams.add(key, value)


class PipedStream(Generic[T]):
    """What `streams.pipe` returns: iterate it (`async for`, or `for` over a plain iterable) to
    get the chunks as they are sent, or `await` it (`.wait_sync()` in a sync task) to send them
    all; it then answers the list of chunks."""

    def __init__(self, key: str, source: AsyncIterable[T] | Iterable[T]) -> None:
        self.key, self._source = key, source
        require_run("streams.pipe").streams.add(key, None, create_only=True)

    async def __aiter__(self) -> AsyncIterator[T]:
        if isinstance(self._source, AsyncIterable):
            async for chunk in self._source:
                _write(self.key, chunk, "streams.pipe")
                yield chunk
        else:
            for chunk in self._source:
                _write(self.key, chunk, "streams.pipe")
                yield chunk

    def __iter__(self) -> Iterator[T]:
        if isinstance(self._source, AsyncIterable):
            raise TypeError("An async iterable is piped with `async for` or `await`")
        for chunk in self._source:
            _write(self.key, chunk, "streams.pipe")
            yield chunk

    async def wait(self) -> list[T]:
        return [chunk async for chunk in self]

    def __await__(self) -> Any:
        return self.wait().__await__()

    def wait_sync(self) -> list[T]:
        return list(self)


class Streams:
    """The `streams` object."""

    def pipe(self, key: Any, source: Any = _MISSING) -> PipedStream[Any]:
        """`pipe(key, source)` or `pipe(source)` (the default stream)."""
        if source is _MISSING:
            key, source = DEFAULT_STREAM, key
        return PipedStream(key, source)

    def append(self, key: Any, value: Any = _MISSING) -> None:
        """`append(key, value)` or `append(value)` (the default stream): one chunk."""
        if value is _MISSING:
            key, value = DEFAULT_STREAM, key
        _write(key, value, "streams.append")

    def define(self, id: str) -> StreamDef[Any]:
        """A stream object for one key: `s = streams.define("tokens")`, then `s.pipe(...)`,
        `s.append(...)`, `s.read(run_id)`."""
        return StreamDef(id)

    def read(self, run_id: str, key: str = DEFAULT_STREAM, *, start_index: int = 0,
             timeout_s: float = 60.0) -> AsyncIterator[Any]:
        """The stream's chunks from `start_index`, live, until the run has finished (or
        `timeout_s` pass with no chunk)."""
        return read_stream(run_id, key, start_index=start_index, timeout_s=timeout_s)

    def read_sync(self, run_id: str, key: str = DEFAULT_STREAM, *, start_index: int = 0,
                  timeout_s: float = 60.0) -> Iterator[Any]:
        return blocking(self.read(run_id, key, start_index=start_index, timeout_s=timeout_s))


class StreamDef(Generic[T]):
    """One stream key with `pipe`, `append` and `read` (`streams.define`)."""

    def __init__(self, id: str) -> None:
        self.id = id

    def pipe(self, source: AsyncIterable[T] | Iterable[T]) -> PipedStream[T]:
        return PipedStream(self.id, source)

    def append(self, value: T) -> None:
        _write(self.id, value, "streams.append")

    def read(self, run_id: str, *, start_index: int = 0,
             timeout_s: float = 60.0) -> AsyncIterator[T]:
        return read_stream(run_id, self.id, start_index=start_index, timeout_s=timeout_s)

    def read_sync(self, run_id: str, *, start_index: int = 0,
                  timeout_s: float = 60.0) -> Iterator[T]:
        return blocking(self.read(run_id, start_index=start_index, timeout_s=timeout_s))


streams = Streams()
