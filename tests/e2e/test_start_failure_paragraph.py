"""A detached start that fails (`up --detach`, `dev`) shows this start's error paragraph only —
the same text a foreground `up` prints — never the lines earlier runs left in the daemon's log.
Real daemons, a real log with earlier runs in it, a damaged and a missing database."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from .conftest import daemon_pids, write_project


def _cli(home: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TRIGGER_LOCAL_HOME": str(home), "TRIGGER_LOCAL_PORT": "0",
           "COLUMNS": "300"}
    env.pop("TRIGGER_API_URL", None)
    env.pop("TRIGGER_SECRET_KEY", None)
    return subprocess.run([sys.executable, "-m", "trigger_local", *args], capture_output=True,
                          text=True, env=env, timeout=90, cwd=cwd)


def _home_with_history(tmp_path: Path) -> Path:
    """A home whose daemon.log holds an earlier run (started detached, stopped)."""
    home = tmp_path / "home"
    assert _cli(home, "up", "--detach").returncode == 0
    assert _cli(home, "down").returncode == 0
    assert "daemon ready" in (home / "logs" / "daemon.log").read_text()
    return home


def _zero_header(db: Path) -> None:
    with db.open("r+b") as fh:
        fh.write(b"\0" * 100)


def _remove(db: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)


def _check(home: Path, project: Path, word: str) -> None:
    foreground = _cli(home, "up")
    assert foreground.returncode == 1 and word in foreground.stderr, foreground.stderr
    for args, cwd in ((["up", "--detach"], None), (["dev"], project)):
        r = _cli(home, *args, cwd=cwd)
        assert r.returncode == 1, (args, r.stderr)
        assert r.stderr == foreground.stderr, (args, r.stderr)
        assert "daemon ready" not in r.stderr and "shutting down" not in r.stderr
    assert daemon_pids(home) == {}


def test_a_damaged_database_shows_the_paragraph_only(tmp_path: Path) -> None:
    home = _home_with_history(tmp_path)
    _zero_header(home / "trigger-local.db")
    _check(home, write_project(tmp_path / "project"), "is damaged")


def test_a_missing_database_shows_the_paragraph_only(tmp_path: Path) -> None:
    home = _home_with_history(tmp_path)
    _remove(home / "trigger-local.db")
    _check(home, write_project(tmp_path / "project"), "is missing")
