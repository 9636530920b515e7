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
earlier hold, never meets one it has (store.py `_held` gives each connection it takes a new
`Prepared`)."""

from __future__ import annotations

import contextlib
import itertools
import re
from collections.abc import Iterator, Sequence
from typing import Any

from .inline import literal

#: how many statements one connection prepares at most (the kept writes' texts are a few
#: dozen: a run's UPDATE names the columns it changes); beyond, statements are sent as text
LIMIT = 200
_NAMES = itertools.count(1)
#: the cast written right after a mark (`?::text[]`), which its value repeats
_CAST = re.compile(r"::(double precision|[a-z]+)(\[\])?")


def marks(sql: str) -> str:
    """`?` marks to `$1, $2, ...` (the statements carry no `?` of their own)."""
    parts = sql.split("?")
    return parts[0] + "".join(f"${n}{part}" for n, part in enumerate(parts[1:], start=1))


def arguments(sql: str, params: Sequence[Any]) -> list[str] | None:
    """`params` written as `EXECUTE`'s arguments, each with its mark's cast; None when a value
    is not of a type written in (inline.py) or the marks do not match the values."""
    parts = sql.split("?")
    if len(parts) != len(params) + 1:
        return None
    out = []
    for value, after in zip(params, parts[1:], strict=True):
        written = literal(value)
        if written is None:
            return None
        cast = _CAST.match(after)
        out.append(f"{written}{cast.group(0)}" if cast else written)
    return out


class Prepared:
    """The statements prepared on one connection, by text (with `?` marks)."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}
        #: prepared by the round trip being written (remembered once it succeeds: `sent`)
        self.new: dict[str, str] = {}

    def statement(self, sql: str, params: Sequence[Any]) -> str | None:
        """`sql` with `params` as one statement of a simple query — `EXECUTE name(values)`,
        after its `PREPARE` the first time; None: `params` cannot be written in."""
        args = arguments(sql, params)
        if args is None:
            return None
        name = self.names.get(sql) or self.new.get(sql)
        head = ""
        if name is None:
            if not args or len(self.names) + len(self.new) >= LIMIT:
                return inline_with(sql, args)
            name = self.new[sql] = f"trigger_local_{next(_NAMES)}"
            head = f"PREPARE {name} AS {marks(sql)}; "
        return f"{head}EXECUTE {name}({', '.join(args)})"

    def statements(self, kept: Sequence[tuple[str, Sequence[Any]]]) -> list[str] | None:
        """Each of `kept` (statement, values) as `statement` writes it; None when a value
        cannot be written in (nothing is prepared then: they are sent one by one)."""
        written = [self.statement(sql, params) for sql, params in kept]
        if any(w is None for w in written):
            self.new.clear()
            return None
        return [w for w in written if w is not None]

    @contextlib.contextmanager
    def sending(self) -> Iterator[None]:
        """Around the round trip that sends what `statements` wrote: once it succeeded, what it
        prepared is remembered; if it failed, those names are never used again."""
        try:
            yield
            self.names.update(self.new)
        finally:
            self.new.clear()


def inline_with(sql: str, args: Sequence[str]) -> str:
    """`sql` with `args` (`arguments`) in place of its marks."""
    parts = sql.split("?")
    return parts[0] + "".join(f"{a}{part}" for a, part in zip(args, parts[1:], strict=True))
