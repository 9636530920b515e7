"""The kept writes a commit sends (pending.py), as `EXECUTE`s of statements prepared once per
connection (docs/scaling.md, "Where the time goes").

The commit's writes go in one round trip through PostgreSQL's simple query protocol, which
takes no parameters: each statement's values are written in (inline.py), and the server parsed,
analysed and planned every statement again at every commit — a third of its work on a trigger
that starts its run (the run's and its attempt's INSERTs, the events' statement: 0.61 ms of
server CPU with its text, 0.44 with `EXECUTE`s). So the first time a connection sends a
statement, the same round trip prepares it (`PREPARE name AS ...`, with `$n` marks: a
server-side prepared statement, the session's); afterwards it sends `EXECUTE name(values)`,
whose plan the server keeps. The values are written as before (inline.py), each with the cast
that follows its mark in the statement (an `ARRAY[...]` of quoted values is `text[]` until
cast: `?::double precision[]`).

A name is remembered only once the round trip that prepared it succeeded: one that failed may
or may not have prepared it (the statements before the error ran), so its name is never used
again and the statement is prepared anew under another. A prepared statement is the session's,
not the transaction's: a rollback (of the transaction or of a savepoint) keeps it. Names are
unique in the process, so a connection the pool hands back, which may hold statements of an
earlier hold, never meets one it has (store.py `_held` holds each connection it takes with a
new `Prepared`: `Held`).

A statement prepared earlier may no longer fit the database: a migration run while the daemon
runs changed a column's type or a function it names (its `$n` types were fixed when it was
prepared: "column is of type jsonb but expression is of type text", "cached plan must not change
result type"), or it is gone (`DEALLOCATE`, `DISCARD`). Every later commit on the connection
would fail the same way; so a round trip that executed one by name and failed with such an error
(`STALE`) forgets every name — the connection prepares its statements again, the old ones stay
unused until it closes — and raises TransactionRetryError: nothing of it was committed (the
error stopped the round trip before its COMMIT), and the engine runs the transaction again.
Failing again, prepared afresh, it raises the error itself."""

from __future__ import annotations

import contextlib
import functools
import itertools
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from ...errors import TransactionRetryError
from .inline import inline, literals

#: how many statements one connection prepares at most (the kept writes' texts are a few
#: dozen: a run's UPDATE names the columns it changes), names given up included (`spent`: the
#: server keeps them until the connection closes); beyond, statements are sent as text
LIMIT = 200
_NAMES = itertools.count(1)
#: the cast written right after a mark (`?::text[]`), which its value repeats
_CAST = re.compile(r"::(double precision|[a-z]+)(\[\])?")
#: the SQLSTATEs that say a statement no longer fits the database, not its values: class 42
#: (a type, column, table or function that changed), 0A000 (asyncpg's
#: InvalidCachedStatementError: its result type changed), 26000 (no prepared statement of the name)
STALE = ("42", "0A000", "26000")


def stale(exc: BaseException) -> bool:
    """`exc` says a statement prepared earlier no longer fits the database (`STALE`)."""
    state = getattr(exc, "sqlstate", None)
    return isinstance(state, str) and state.startswith(STALE)


def marks(sql: str) -> str:
    """`?` marks to `$1, $2, ...` (the statements carry no `?` of their own)."""
    parts = sql.split("?")
    return parts[0] + "".join(f"${n}{part}" for n, part in enumerate(parts[1:], start=1))


@functools.lru_cache(maxsize=4 * LIMIT)
def casts(sql: str) -> tuple[str, ...]:
    """The cast written right after each of `sql`'s marks ('' where none), found once per
    statement text: a commit writes a few statements, each at every commit."""
    return tuple(cast.group(0) if (cast := _CAST.match(after)) else ""
                 for after in sql.split("?")[1:])


def arguments(sql: str, params: Sequence[Any]) -> list[str] | None:
    """`params` written as `EXECUTE`'s arguments (inline.py `literals`), each with its mark's
    cast (`casts`); None when they cannot be written in."""
    values = literals(sql, params)
    if values is None:
        return None
    return [value + cast for value, cast in zip(values, casts(sql), strict=True)]


class Prepared:
    """The statements prepared on one connection, by text (with `?` marks)."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}
        #: prepared by the round trip being written (remembered once it succeeds: `sent`)
        self.new: dict[str, str] = {}
        #: the round trip being written executes a statement prepared by an earlier one
        self.reused = False
        #: names given up (their round trip failed, or they no longer fit): perhaps prepared
        self.spent = 0

    def statement(self, sql: str, params: Sequence[Any]) -> str | None:
        """`sql` with `params` as one statement of a simple query — `EXECUTE name(values)`,
        after its `PREPARE` the first time; None: `params` cannot be written in."""
        args = arguments(sql, params)
        if args is None:
            return None
        name = self.names.get(sql)
        self.reused = self.reused or name is not None
        name = name or self.new.get(sql)
        head = ""
        if name is None:
            if not args or len(self.names) + len(self.new) + self.spent >= LIMIT:
                return inline(sql, params)
            name = self.new[sql] = f"trigger_local_{next(_NAMES)}"
            head = f"PREPARE {name} AS {marks(sql)}; "
        return f"{head}EXECUTE {name}({', '.join(args)})"

    def statements(self, kept: Sequence[tuple[str, Sequence[Any]]]) -> list[str] | None:
        """Each of `kept` (statement, values) as `statement` writes it; None when a value
        cannot be written in (nothing is prepared then: they are sent one by one)."""
        self.reused = False
        written = [self.statement(sql, params) for sql, params in kept]
        if any(w is None for w in written):
            self.new.clear()
            return None
        return [w for w in written if w is not None]

    @contextlib.contextmanager
    def sending(self) -> Iterator[None]:
        """Around the round trip that sends what `statements` wrote: once it succeeded, what it
        prepared is remembered; if it failed, those names are never used again, and if an
        earlier statement no longer fits (`stale`), no name is (the module docstring)."""
        try:
            yield
            self.names.update(self.new)
        except BaseException as exc:
            self.spent += len(self.new)
            if not (self.reused and stale(exc)):
                raise
            self.spent += len(self.names)
            self.names.clear()
            raise TransactionRetryError(f"a prepared statement no longer fits the database "
                                        f"({exc}): prepared again, run again") from exc
        finally:
            self.new.clear()
            self.reused = False


@dataclass
class Held:
    """A connection the store holds between transactions (store.py `_held`), with the
    statements prepared on it."""

    conn: Any
    prepared: Prepared = field(default_factory=Prepared)
