"""What a statement raises when the database does not answer, or refuses a transaction for a
conflict with another (docs/scaling.md, "When the database does not answer"): the errors the
engine and the API know what to do with."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

import asyncpg

from ...errors import DatabaseUnavailableError, TransactionRetryError

#: what a lost connection or an unreachable server raises (asyncpg, the socket, a timeout;
#: InternalClientError: a statement sent on a connection whose server ended it while it was idle;
#: a server that ends a session as it stops, or refuses a new one, which a pool makes when
#: its connection is gone, while it starts or stops or has too many connections)
UNREACHABLE = (OSError, asyncio.TimeoutError, asyncpg.PostgresConnectionError,
               asyncpg.InterfaceError, asyncpg.InternalClientError, asyncpg.AdminShutdownError,
               asyncpg.CrashShutdownError, asyncpg.CannotConnectNowError,
               asyncpg.TooManyConnectionsError)


def lost(conn: Any) -> bool:
    """`conn` (a pool's) is closed: asyncpg hands a connection it lost back to the pool itself,
    and asking it anything afterwards raises InterfaceError."""
    try:
        return bool(conn.is_closed())
    except asyncpg.InterfaceError:
        return True


#: what PostgreSQL raises when it refuses one of two transactions that ran at once and touched
#: the same records (serializable isolation, or a deadlock): run the transaction again
CONFLICTS = (asyncpg.SerializationError, asyncpg.DeadlockDetectedError)


@contextlib.contextmanager
def reachable() -> Iterator[None]:
    """A database that does not answer becomes DatabaseUnavailableError: a 503, which clients
    and task processes retry, instead of a 500. A transaction refused for a conflict with
    another one becomes TransactionRetryError (the engine runs its unit of work again)."""
    try:
        yield
    except UNREACHABLE as exc:
        raise DatabaseUnavailableError(
            f"the database did not answer ({type(exc).__name__}: {exc}): retry") from exc
    except CONFLICTS as exc:
        raise TransactionRetryError(
            f"another daemon's transaction touched the same records ({exc}): retry") from exc
