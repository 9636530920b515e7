"""Defects an outside look found at the routes, against a real daemon: list filters that are not
a date or a ref are a 400 naming the filter (they matched nothing or everything, silently)."""

from __future__ import annotations

from .conftest import DaemonProcess
from .test_cli_messages import cli

RUNS = "/api/v1/runs"
TOKENS = "/api/v1/waitpoints/tokens"


def test_a_created_at_that_is_not_a_finite_instant_is_a_400_naming_it(
        daemon: DaemonProcess) -> None:
    for path in (RUNS, TOKENS):
        for name, value in (("filter[createdAt][to]", "nan"), ("filter[createdAt][to]", "inf"),
                            ("filter[createdAt][from]", "-1"),
                            ("filter[createdAt][from]", "-infinity")):
            r = daemon.api("GET", path, params={name: value})
            assert r.status_code == 400, (path, name, value, r.text)
            assert name in r.json()["error"], r.text
        for good in ("0", "1764000000000", "2026-11-30T10:00:00Z"):
            r = daemon.api("GET", path, params={"filter[createdAt][from]": good})
            assert r.status_code == 200, (path, good, r.text)


def test_a_malformed_project_ref_filter_is_a_400_naming_it(daemon: DaemonProcess) -> None:
    r = daemon.api("GET", RUNS, params={"filter[project]": "bad ref"})
    assert r.status_code == 400, r.text
    assert "filter[project]" in r.json()["error"] and "'bad ref'" in r.json()["error"], r.text
    # a well-formed ref the daemon does not serve still lists nothing
    r = daemon.api("GET", RUNS, params={"filter[project]": "proj_elsewhere"})
    assert r.status_code == 200 and r.json()["data"] == [], r.text
    done = cli(daemon, "runs", "ls", "--project", "bad ref")
    assert done.returncode == 1, done
    assert "filter[project]" in done.stderr and "Traceback" not in done.stderr, done.stderr
