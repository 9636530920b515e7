"""The dashboard's runs table with several projects (issue #11): a project column, and a
`project:REF` filter that the API applies."""

from __future__ import annotations

from tui.runs import COLUMNS, parse_filter, row_of


def test_the_runs_filter_takes_a_project() -> None:
    filters, text = parse_filter("project:proj_a failed words")
    assert filters == {"project": ["proj_a"], "status": ["FAILED"]} and text == "words"


def test_each_row_shows_its_project() -> None:
    row = dict(zip(COLUMNS, row_of({"id": "run_1", "project": "proj_b", "taskIdentifier": "hello",
                                    "status": "QUEUED"}, 0.0), strict=True))
    assert (row["project"], str(row["task"])) == ("proj_b", "hello")
