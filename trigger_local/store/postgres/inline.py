"""A statement with its values written in, for the few places a transaction sends several
statements in one round trip (store.py: `BEGIN` with its first write, the kept writes with the
`COMMIT`). PostgreSQL's simple query protocol takes several statements at once but no
parameters; asyncpg sends parameters only one statement at a time.

Values are written as literals the way libpq's `PQescapeStringConn` does with
`standard_conforming_strings` on (the write pool sets it: store.py): a string is quoted and its
quotes doubled, nothing else is special in it. Only the types the store sends are written in;
for any other value `inline` says None and the caller sends the statement on its own."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, cast


def literal(value: Any) -> str | None:
    """`value` as an SQL literal; None for a value not written in here."""
    kind = type(value)  # the common types first, by identity: a commit writes dozens of values
    if kind is str:
        return None if "\x00" in value else "'" + value.replace("'", "''") + "'"
    if kind is int:
        return str(value)
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        # quoted: PostgreSQL reads 'inf' and 'nan' too, and the cast beside the mark types it
        return f"'{value!r}'" if math.isfinite(value) else f"'{value}'"
    if isinstance(value, str):
        # a text value cannot hold NUL: the driver, sent it on its own, says so
        return None if "\x00" in value else "'" + value.replace("'", "''") + "'"
    if isinstance(value, list | tuple):
        items = [literal(v) for v in value]
        return None if None in items else "ARRAY[" + ", ".join(i for i in items if i) + "]"
    return None


def literals(sql: str, params: Sequence[Any]) -> list[str] | None:
    """`params` as literals, one for each `?` mark of `sql` (as the store writes them); None
    when a value is not of a type written in here or the marks do not match the values."""
    if sql.count("?") != len(params):
        return None
    values = [literal(v) for v in params]
    return None if None in values else cast(list[str], values)


def inline(sql: str, params: Sequence[Any]) -> str | None:
    """`sql` with `params` written in (`literals`); None when they cannot be."""
    values = literals(sql, params)
    if values is None:
        return None
    parts = sql.split("?")
    return parts[0] + "".join(f"{value}{part}" for value, part in zip(values, parts[1:],
                                                                      strict=True))
