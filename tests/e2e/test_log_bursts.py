"""A task that logs more than the daemon's payload limit keeps every line: the runtime sends its
lines in bursts under the limit (a 413 would drop a burst), a single line over the limit is cut
with a marker, and the log spool is gone from disk once the run has ended."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .conftest import DaemonProcess, wait_for, write_project

LOUD = '''
from trigger_local import logger, task

@task(id="loud", isolated=True)  # its own process: it has a log spool
def loud(payload, ctx):
    for n in range(payload["lines"]):
        print(f"line {n} " + payload["line"])
    logger.info("huge " + payload["fill"] * payload["huge"])
    print("printed last")
'''

LIMIT = 64 * 1024


@contextmanager
def loud_daemon(tmp_path: Path, limit: int) -> Iterator[DaemonProcess]:
    """A daemon whose payload limit is `limit`, with the `loud` task registered."""
    home = tmp_path / "home"
    d = DaemonProcess(home, env={"TRIGGER_LOCAL_HOME": str(home),
                                 "TRIGGER_LOCAL_PAYLOAD_LIMIT_BYTES": str(limit)})
    d.start()
    try:
        d.register(write_project(tmp_path / "loudproj", LOUD))
        yield d
    finally:
        d.close()


def test_logs_over_the_payload_limit_are_all_kept(tmp_path: Path) -> None:
    with loud_daemon(tmp_path, LIMIT) as d:
        # ~2 MB of lines: 30+ times the limit, in bursts of 100 lines (~200 KB) unless split
        run_id = d.trigger("loud", {"lines": 1000, "line": "x" * 2000, "huge": 3 * LIMIT,
                                    "fill": "y"})
        run = d.wait_status(run_id, timeout=120)
        assert run["status"] == "COMPLETED", run
        messages = d.log_messages(run_id)
        lines = [m for m in messages if m.startswith("line ")]
        assert lines == [f"line {n} " + "x" * 2000 for n in range(1000)], len(lines)
        assert messages[-1] == "printed last", messages[-3:]
        huge = [m for m in messages if m.startswith("huge ")]
        assert len(huge) == 1 and len(huge[0]) <= LIMIT, len(huge[0]) if huge else messages[-3:]
        assert "[truncated: " in huge[0] and "over the daemon's payload limit" in huge[0]
        # no spool left once the run ended: removed (its process exited) or emptied (kept)
        wait_for(lambda: all(_size(p) == 0 for p in d.home.rglob("*.spool")), 60,
                 what="the run's log spool to be gone")


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0
