"""The lists' filters the PostgreSQL areas share (runs.py, waitpoints.py): tags, creation time."""

from __future__ import annotations

from collections.abc import Sequence

from ..sqlite.sql import Where


def tagged(where: Where, table: str, tags: Sequence[str] | None) -> None:
    """Rows of `table` (runs, waitpoints) carrying any of `tags`, found in its tags table
    (`run_tags`, `waitpoint_tags`: schema_lists.py) rather than in every row's JSON."""
    if tags:
        one = table.removesuffix("s")
        where.add(f"{table}.id IN (SELECT {one}_id FROM {one}_tags WHERE tag = ANY(?::text[]))",
                  list(tags))


def created_between(q: Where, created_from: float | None, created_to: float | None) -> None:
    """Narrow `q` to rows created in [created_from, created_to] (either end open when None)."""
    if created_from is not None:
        q.add("created_at >= ?", created_from)
    if created_to is not None:
        q.add("created_at <= ?", created_to)
