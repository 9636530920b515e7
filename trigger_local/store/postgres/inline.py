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
from typing import Any


class _NotInlined(Exception):
    pass


def literal(value: Any) -> str:
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
        if "\x00" in value:  # a text value cannot hold NUL: let the driver say so
            raise _NotInlined
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, list | tuple):
        return "ARRAY[" + ", ".join(literal(v) for v in value) + "]"
    raise _NotInlined


def inline(sql: str, params: Sequence[Any]) -> str | None:
    """`sql` (with `?` marks, as the store writes them) with `params` written in; None when a
    value is not of a type written in here."""
    parts = sql.split("?")
    if len(parts) != len(params) + 1:
        return None
    try:
        values = [literal(v) for v in params]
    except _NotInlined:
        return None
    out = [parts[0]]
    for value, part in zip(values, parts[1:], strict=True):
        out.append(value + part)
    return "".join(out)
