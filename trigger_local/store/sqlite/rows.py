"""Mapping between the dataclasses in `models` and SQLite rows: JSON for lists and dicts,
integers for booleans. Kept apart so the areas read as the list of their statements."""

from __future__ import annotations

import dataclasses
import json
import sys
from typing import Any, TypeVar

from ..models import (
    Attempt,
    Batch,
    Project,
    Queue,
    Run,
    Schedule,
    TaskDef,
    Waitpoint,
)

T = TypeVar("T")

JSON_FIELDS: dict[type, set[str]] = {
    Run: {"error", "tags", "metadata"},
    Attempt: {"error"},
    Waitpoint: {"tags"},
    Batch: {"run_ids"},
    TaskDef: {"retry", "schema", "schedule", "rate_limit"},
}
BOOL_FIELDS: dict[type, set[str]] = {
    Run: {"resume_parent", "is_test"},
    Attempt: {"counts"},
    Waitpoint: {"output_is_error"},
    TaskDef: {"queue_is_custom", "shared"},
    Queue: {"paused"},
    Schedule: {"active"},
    Project: {"dev"},
}
_SKIP: dict[type, set[str]] = {Queue: {"running", "queued"}}
#: values most rows share, stored as NULL by SQLite (no byte in the row; `compact`) and read
#: back as the value by both stores (migration 18, schema_compact.py: issue #17's bytes per
#: finished run)
NULL_MEANS: dict[type, dict[str, Any]] = {
    Run: {"payload_type": "application/json", "tags": [], "metadata": {}},
    Attempt: {"executor": "process"},
}


_COLUMNS: dict[type, tuple[str, ...]] = {}


def _columns(cls: type) -> tuple[str, ...]:
    found = _COLUMNS.get(cls)
    if found is None:  # once per class: a row is written per change (issue #13)
        skip = _SKIP.get(cls, set())
        found = _COLUMNS[cls] = tuple(
            f.name for f in dataclasses.fields(cls) if f.name not in skip)
    return found


def columns(cls: type) -> list[str]:
    return list(_columns(cls))


def insert_sql(table: str, cls: type, verb: str = "INSERT") -> str:
    """`INSERT INTO table (cols) VALUES (:cols)` for the dataclass `cls`'s columns."""
    cols = columns(cls)
    return (f"{verb} INTO {table} ({', '.join(cols)}) "
            f"VALUES ({', '.join(':' + c for c in cols)})")


def to_row(obj: Any, compact: bool = False) -> dict[str, Any]:
    """`obj`'s columns; `compact`: common values as NULL (SQLite's tables, migration 18)."""
    cls = type(obj)
    jsons, bools = JSON_FIELDS.get(cls, set()), BOOL_FIELDS.get(cls, set())
    nulls = NULL_MEANS.get(cls, {}) if compact else {}
    row: dict[str, Any] = {}
    for name in _columns(cls):
        value = getattr(obj, name)
        if name in nulls and value == nulls[name]:
            value = None
        elif name in jsons:
            value = None if value is None else json.dumps(value)
        elif name in bools:
            value = int(bool(value))
        row[name] = value
    return row


def encode_changes(cls: type, changes: dict[str, Any],
                   compact: bool = False) -> dict[str, Any]:
    jsons, bools = JSON_FIELDS.get(cls, set()), BOOL_FIELDS.get(cls, set())
    nulls = NULL_MEANS.get(cls, {}) if compact else {}
    out = {}
    for name, value in changes.items():
        if name in nulls and value == nulls[name]:
            value = None
        elif name in jsons:
            value = None if value is None else json.dumps(value)
        elif name in bools:
            value = int(bool(value))
        out[name] = value
    return out


def from_row(cls: type[T], row: Any) -> T:
    """The `cls` a row holds. Its columns are taken by position, under names interned once per
    shape of row, and only the few that need it are decoded: reading a `sqlite3.Row` by name
    compares the name with each column in turn, and a constructor matches a keyword that is not
    the interned name by comparing it with each parameter in turn, which made a run's 43
    columns cost ~25 µs a read, ~5 µs now (two reads per no-op run, issue #13)."""
    keys = tuple(row.keys())
    shape = _SHAPES.get((cls, keys))
    if shape is None:
        shape = _SHAPES[(cls, keys)] = _shape(cls, keys)
    names, special = shape
    values = row.values() if isinstance(row, dict) else row  # a dict, or a sqlite3.Row
    kwargs = dict(zip(names, values, strict=True))
    for key, kind, default in special:
        value = kwargs[key]
        if kind == _NULL_MEANS_KIND:
            if value is None:
                kwargs[key] = default.copy() if isinstance(default, (list, dict)) else default
            elif key in JSON_FIELDS[cls]:
                kwargs[key] = json.loads(value)
        elif kind == _JSON_KIND:
            if value is not None:
                kwargs[key] = json.loads(value)
        else:
            kwargs[key] = bool(value)
    return cls(**kwargs)


_NULL_MEANS_KIND, _JSON_KIND, _BOOL_KIND = 0, 1, 2
#: per (class, a row's columns): the columns' names, interned, and the columns `from_row`
#: decodes, how, and what a NULL there means
_Shape = tuple[tuple[str, ...], tuple[tuple[str, int, Any], ...]]
_SHAPES: dict[tuple[type, tuple[str, ...]], _Shape] = {}


def _shape(cls: type, keys: tuple[str, ...]) -> _Shape:
    jsons, bools = JSON_FIELDS.get(cls, set()), BOOL_FIELDS.get(cls, set())
    nulls = NULL_MEANS.get(cls, {})
    names = tuple(sys.intern(key) for key in keys)
    special: list[tuple[str, int, Any]] = []
    for key in names:
        if key in nulls:
            special.append((key, _NULL_MEANS_KIND, nulls[key]))
        elif key in jsons:
            special.append((key, _JSON_KIND, None))
        elif key in bools:
            special.append((key, _BOOL_KIND, None))
    return names, tuple(special)
