"""Mapping between the dataclasses in `models` and SQLite rows: JSON for lists and dicts,
integers for booleans. Kept apart so the areas read as the list of their statements."""

from __future__ import annotations

import dataclasses
import json
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

_JSON_FIELDS: dict[type, set[str]] = {
    Run: {"error", "tags", "metadata"},
    Attempt: {"error"},
    Waitpoint: {"tags"},
    Batch: {"run_ids"},
    TaskDef: {"retry", "schema", "schedule", "rate_limit"},
}
_BOOL_FIELDS: dict[type, set[str]] = {
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
_NULL_MEANS: dict[type, dict[str, Any]] = {
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
    jsons, bools = _JSON_FIELDS.get(cls, set()), _BOOL_FIELDS.get(cls, set())
    nulls = _NULL_MEANS.get(cls, {}) if compact else {}
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
    jsons, bools = _JSON_FIELDS.get(cls, set()), _BOOL_FIELDS.get(cls, set())
    nulls = _NULL_MEANS.get(cls, {}) if compact else {}
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
    jsons, bools = _JSON_FIELDS.get(cls, set()), _BOOL_FIELDS.get(cls, set())
    nulls = _NULL_MEANS.get(cls, {})
    kwargs: dict[str, Any] = {}
    for key in row.keys():
        value = row[key]
        if value is None and key in nulls:
            value = nulls[key]
            if isinstance(value, (list, dict)):
                value = value.copy()  # a list or dict of its own
        elif key in jsons:
            value = None if value is None else json.loads(value)
        elif key in bools:
            value = bool(value)
        kwargs[key] = value
    return cls(**kwargs)
