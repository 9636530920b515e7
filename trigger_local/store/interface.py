"""The storage interface: what the engine needs from a database, and nothing about SQL.

`Store` opens and closes the database and hands out two views of it, both made of *areas* (one
per kind of record: `runs`, `waitpoints`, `queues`, ...):

- `tx()`: one atomic write transaction (`StoreTx`). Everything done through it commits together
  when the block ends, or — if the block or the commit raises — not at all. Transactions are
  serialisable: what they commit is what they would have committed one at a time, each seeing
  the previous ones' writes. SqliteStore runs them one at a time; PostgresStore runs several
  daemons' at once and refuses one of two that touched the same records
  (`TransactionRetryError`: nothing of it committed; the engine runs it again).
  `tx(exclusive=True)` waits for the other exclusive transactions (across daemons) and sees
  their writes, and is never refused: the dequeue, which counts what runs everywhere. On
  PostgreSQL it reads what others committed without the serializable checks, which is enough
  only for work that no transaction but an exclusive one can undermine (store/postgres/store.py
  says why the dequeue is such work). `tx(starts=True)` is a serialisable transaction that
  also waits for the exclusive ones and sees their writes (it may be refused like any other):
  a trigger that dequeues and starts its new run in its own transaction (engine/starting.py).
- `read()`: reads outside a transaction (`StoreReader`), each seeing the latest committed state.
  Its areas are the read protocols only, so whoever holds a reader cannot write through it.

`SqliteStore` (store/sqlite/) and `PostgresStore` (store/postgres/) implement it;
tests/test_store_contract.py is the specification both pass unchanged. Each area's methods say
in their docstrings what they return and what `None` or `False` means (store/run_areas.py and its
siblings).
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Protocol

from .catalog_areas import (
    DebounceReader,
    DebounceStore,
    EnvVarReader,
    EnvVarStore,
    ProjectReader,
    ProjectStore,
    QueueReader,
    QueueStore,
    RateLimitReader,
    RateLimitStore,
    ScheduleReader,
    ScheduleStore,
    VersionReader,
    VersionStore,
)
from .daemon_areas import (
    CheckpointReader,
    CheckpointStore,
    KvReader,
    KvStore,
    RequestReader,
    RequestStore,
    WorkerReader,
    WorkerStore,
)
from .run_areas import (
    AttemptReader,
    AttemptStore,
    EventReader,
    EventStore,
    LogReader,
    LogStore,
    RunReader,
    RunStore,
    SnapshotReader,
    TimerReader,
)
from .step_areas import StepReader, StepStore
from .stream_areas import StreamReader, StreamStore
from .wait_areas import BatchReader, BatchStore, WaitpointReader, WaitpointStore


class StoreReader(Protocol):
    """Reads outside a transaction: every area, read methods only."""

    @property
    def runs(self) -> RunReader: ...
    @property
    def snapshots(self) -> SnapshotReader: ...
    @property
    def attempts(self) -> AttemptReader: ...
    @property
    def timers(self) -> TimerReader: ...
    @property
    def events(self) -> EventReader: ...
    @property
    def logs(self) -> LogReader: ...
    @property
    def waitpoints(self) -> WaitpointReader: ...
    @property
    def batches(self) -> BatchReader: ...
    @property
    def projects(self) -> ProjectReader: ...
    @property
    def versions(self) -> VersionReader: ...
    @property
    def queues(self) -> QueueReader: ...
    @property
    def schedules(self) -> ScheduleReader: ...
    @property
    def rate_limits(self) -> RateLimitReader: ...
    @property
    def debounces(self) -> DebounceReader: ...
    @property
    def env_vars(self) -> EnvVarReader: ...
    @property
    def workers(self) -> WorkerReader: ...
    @property
    def checkpoints(self) -> CheckpointReader: ...
    @property
    def requests(self) -> RequestReader: ...
    @property
    def kv(self) -> KvReader: ...
    @property
    def steps(self) -> StepReader: ...
    @property
    def streams(self) -> StreamReader: ...


class StoreTx(StoreReader, Protocol):
    """One write transaction: every area, reads and writes."""

    @property
    def runs(self) -> RunStore: ...
    @property
    def attempts(self) -> AttemptStore: ...
    @property
    def events(self) -> EventStore: ...
    @property
    def logs(self) -> LogStore: ...
    @property
    def waitpoints(self) -> WaitpointStore: ...
    @property
    def batches(self) -> BatchStore: ...
    @property
    def projects(self) -> ProjectStore: ...
    @property
    def versions(self) -> VersionStore: ...
    @property
    def queues(self) -> QueueStore: ...
    @property
    def schedules(self) -> ScheduleStore: ...
    @property
    def rate_limits(self) -> RateLimitStore: ...
    @property
    def debounces(self) -> DebounceStore: ...
    @property
    def env_vars(self) -> EnvVarStore: ...
    @property
    def workers(self) -> WorkerStore: ...
    @property
    def checkpoints(self) -> CheckpointStore: ...
    @property
    def requests(self) -> RequestStore: ...
    @property
    def kv(self) -> KvStore: ...
    @property
    def steps(self) -> StepStore: ...
    @property
    def streams(self) -> StreamStore: ...

    def savepoint(self) -> AbstractAsyncContextManager[None]:
        """A part of this transaction that can fail alone: if the block raises, what it wrote is
        undone, the rest of the transaction stands, and the exception goes on. Used to commit
        several callers' units of work in one transaction (`GroupCommit`, engine/unit.py)."""
        ...


class SharedPackets(Protocol):
    """The packets of a store several daemons share (packet_sharing.py): each a row of
    (name, project, content type, digest, data)."""

    async def put(self, name: str, project: str | None, content_type: str, digest: str,
                  data: bytes, *, replace: bool = False) -> bool:
        """False, writing nothing, when the name is a packet of another project (unless
        `replace`): decided in the write itself, as two uploads of one name may run at once."""
        ...

    async def head(self, name: str) -> tuple[str | None, str, str] | None: ...

    async def get(self, name: str) -> tuple[str | None, str, str, bytes] | None: ...

    async def delete(self, names: list[str]) -> None: ...


class Store(Protocol):
    """A database behind the storage interface. `await open()` first, `close()` at the end."""

    #: other daemons may write the same database (PostgreSQL): what a daemon holds in memory
    #: only (its dispatcher's reserved runs, engine/dequeue.py) they cannot see
    shared: bool

    @property
    def packets(self) -> SharedPackets | None:
        """Where the daemons of a shared store find each other's packets (None: the home's
        files are the packets, packet_store.py)."""
        ...

    async def open(self) -> None:
        """Create or migrate the database; afterwards `tx()` and `read()` work."""
        ...

    async def close(self) -> None:
        """After this, `tx()` and `read()` raise DaemonStoppingError (a 503, never a 500)."""
        ...

    def tx(self, exclusive: bool = False,
           starts: bool = False) -> AbstractAsyncContextManager[StoreTx]:
        """One atomic write transaction (see the module docstring)."""
        ...

    def read(self) -> StoreReader:
        """Reads of the latest committed state."""
        ...

    async def reclaim(self) -> int:
        """Return space that deletions freed to the file system, a bounded amount per call so
        that it never stalls the event loop; answers how much is still to return (0: nothing,
        and always for a backend that does it itself)."""
        ...
