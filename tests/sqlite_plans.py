"""SQLite only: what a list page's statements cost, from `EXPLAIN QUERY PLAN` (issue #17).

The store contract tests assert results on every backend; for the SQLite store they also ask
this helper whether each statement a page runs reads an index in the list's order: no temporary
B-tree for the ORDER BY (a sort of every match) and no scan of a whole table. So an index
regression fails CI without a million-row build."""

from __future__ import annotations

import re
import sqlite3
from contextlib import closing
from typing import Any

from trigger_local.store.sqlite.run_pages import run_filter, statements, token_statements


def plan(path: str, text: str, params: list[Any]) -> list[str]:
    with closing(sqlite3.connect(path)) as conn:
        return [row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {text}", params)]


#: a cursor bounding the index range itself: `(created_at,id)<(?,?)` in a SEARCH step, or
#: `created_at<?` where the tie-breaker is the rowid (runs, migration 18: SQLite seeks a row
#: value on its first part then, and checks the rowid on the rows of that one instant only)
CURSOR_BOUND = re.compile(r"\(\w+,\w+\)[<>]\(\?,\?\)|created_at[<>]\?")


def _check(path: str, texts: list[tuple[str, list[Any]]], scan_ok: str | None,
           cursor: bool = False) -> list[str]:
    lines: list[str] = []
    for text, params in texts:
        steps = plan(path, text, params)
        lines += steps
        # else a deep page reads every row from the start of its range up to the cursor
        assert not cursor or any(CURSOR_BOUND.search(s) for s in steps), (text, steps)
        assert not [s for s in steps if "TEMP B-TREE" in s], (text, steps)
        # json_each of one row's tags (a filter checked per row) is no table scan
        scans = [s for s in steps if s.startswith("SCAN") and "json_each" not in s]
        assert all(scan_ok and s.startswith(f"SCAN {scan_ok}") for s in scans), (text, steps)
    return lines


def assert_run_page_plans(path: str, cursor: tuple[float, int] | None = None,
                          **filters: Any) -> list[str]:
    """Every statement of a runs page with `filters` (RunReader.page's keywords) searches an
    index in order. A page with no filter but the time window may walk `runs_created` in
    order (it stops after the page)."""
    f = run_filter(**filters)
    scan_ok = "runs USING INDEX runs_created" if not f.values else None
    lines: list[str] = []
    for ascending in (False, True):
        lines += _check(path, statements(f, cursor, ascending, 26), scan_ok, cursor is not None)
    return lines


def assert_token_page_plans(path: str, statuses: list[str], tags: list[str] | None = None,
                            cursor: tuple[float, str] | None = None) -> list[str]:
    lines: list[str] = []
    for ascending in (False, True):
        lines += _check(path, token_statements("MANUAL", statuses, tags, None, (None, None),
                                               cursor, ascending, 26), None, cursor is not None)
    return lines
