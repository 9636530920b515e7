"""A new run's INSERT binds only the columns it sets (issue #13).

A run has 43 columns (the table's 44th, `seq`, is the rowid); a queued run sets 11 of them — the
others are NULL, or the value the schema's DEFAULT gives (`priority`, `attempt_count`, `depth`,
...). Binding all 43 by name was a third of the INSERT's cost. Here a run's row is its
non-default values in column order, bound by position, under an `INSERT` that names those
columns only: one statement per shape of row (a batch's runs share one), cached. `insert_many`
sends a batch's runs of one shape with one `executemany`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from operator import attrgetter
from typing import Any

from ..counts import CountJournal
from ..models import Run
from .rows import BOOL_FIELDS, JSON_FIELDS, NULL_MEANS, columns

#: what the `runs` table gives a column the INSERT leaves out (schema.py, schema_compact.py:
#: `DEFAULT`; every other column is NULL), checked against the live schema by
#: tests/test_store_run_inserts.py
RUN_DEFAULTS: dict[str, Any] = {"priority": 0, "attempt_count": 0, "resume_parent": 0,
                                "executed_s": 0, "is_test": 0, "depth": 0,
                                "interrupted_count": 0}
_COLS = tuple(columns(Run))
_DEFAULT_OF = tuple(RUN_DEFAULTS.get(name) for name in _COLS)
_Shape = tuple[int, ...]  # the positions of the columns a row sets
_SQL: dict[_Shape, str] = {}
#: each column's value in one C call, and what `to_row(run, compact=True)` (rows.py) does to it
_VALUES = attrgetter(*_COLS)
_PLAIN, _JSON, _BOOL = 0, 1, 2
_KIND = tuple(_JSON if name in JSON_FIELDS[Run] else _BOOL if name in BOOL_FIELDS[Run]
              else _PLAIN for name in _COLS)
_NOTHING = object()
_NULL_MEANS = tuple(NULL_MEANS[Run].get(name, _NOTHING) for name in _COLS)


def run_row(run: Run) -> tuple[_Shape, tuple[Any, ...]]:
    """The positions of the columns `run`'s compact row (rows.py `to_row`) sets to something
    other than what the schema would give them, and those values (~5 µs; `to_row` and a pass
    over its dict took ~15)."""
    shape: list[int] = []
    values: list[Any] = []
    for i, value in enumerate(_VALUES(run)):
        if value is None:
            continue
        if _NULL_MEANS[i] is not _NOTHING and value == _NULL_MEANS[i]:
            continue
        kind = _KIND[i]
        if kind == _JSON:
            value = json.dumps(value)
        elif kind == _BOOL:
            value = int(bool(value))
        default = _DEFAULT_OF[i]
        if default is not None and value == default:
            continue
        shape.append(i)
        values.append(value)
    return tuple(shape), tuple(values)


def insert_statement(shape: _Shape) -> str:
    found = _SQL.get(shape)
    if found is None:
        names = ", ".join(_COLS[i] for i in shape)
        found = _SQL[shape] = (f"INSERT INTO runs ({names}) "
                               f"VALUES ({', '.join('?' * len(shape))})")
    return found


def runs_of_a_shape(runs: Sequence[Run]) -> Iterator[tuple[str, list[tuple[Run, tuple[Any, ...]]]]]:
    """`runs` in order, in runs of rows that share a shape: (their INSERT, [(run, values)])."""
    group: list[tuple[Run, tuple[Any, ...]]] = []
    shape: _Shape | None = None
    for run in runs:
        this, values = run_row(run)
        if this != shape and group:
            assert shape is not None
            yield insert_statement(shape), group
            group = []
        shape = this
        group.append((run, values))
    if group:
        assert shape is not None
        yield insert_statement(shape), group


class Counted:
    """The rows of a group as `executemany` takes them, each counted as it is taken.
    `executemany` takes a row just before it writes it: when one fails (a duplicate id), the
    rows before it are written and counted, and `take_back_last` undoes the failing one's count
    (tests/test_store_index_writes.py)."""

    def __init__(self, group: Sequence[tuple[Run, tuple[Any, ...]]],
                 journal: CountJournal) -> None:
        self._group, self._journal, self._mark = group, journal, journal.mark()

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        journal = self._journal
        for run, values in self._group:
            self._mark = journal.mark()
            journal.added((run.status, run.project, run.queue))
            yield values

    def take_back_last(self) -> None:
        self._journal.undo(self._mark)
