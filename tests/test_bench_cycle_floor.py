"""scripts/bench_cycle_floor.py end to end with a tiny run count, so that it does not rot: every
variant on both transports completes (a real task process, a real store file), the store holds
every run COMPLETED with the rows its variant writes, and the figures are sane."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "bench_cycle_floor.py"
VARIANTS = {"full", "wide-page", "per-run", "no-events", "no-attempts", "no-counts",
            "rows-only", "no-sql"}


def test_every_variant_runs_and_prints_sane_figures(tmp_path: Path) -> None:
    out = tmp_path / "rows.json"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--runs", "120", "--huey-python", str(tmp_path / "none"),
         "--json", str(out)], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and "destroyed" not in done.stderr, done.stderr
    rows = json.loads(out.read_text())
    assert {(r["variant"], r["transport"]) for r in rows} == \
        {(v, t) for v in VARIANTS for t in ("ws", "stream")}
    for r in rows:
        assert r["runs"] == 108  # 120 less the tenth that warms up
        assert 0 < r["runs_per_s"] < 1_000_000
        assert 0 < r["daemon_cpu_us"] < 100_000 and 0 <= r["task_cpu_us"] < 100_000
        assert r["daemon_cpu_us"] >= r["tx_cpu_us"] >= r["commit_cpu_us"] >= 0
        assert 1 <= r["group"] <= 4
        if r["variant"] == "no-sql":
            assert r["tx_cpu_us"] == 0 and "check" not in r
        else:  # every run COMPLETED in the store, with its variant's rows
            assert r["check"] == "ok" and r["commit_cpu_us"] > 0
        line = next(x for x in done.stdout.splitlines()
                    if x.split()[:2] == [r["variant"], r["transport"]])
        assert int(line.split()[2]) == r["runs_per_s"]
    assert "SqliteHuey: no huey in" in done.stdout


def test_bad_options_are_one_line_errors(tmp_path: Path) -> None:
    for args, says in ((["--only", "full,bogus"], "unknown bogus"),
                       (["--transport", "pigeon"], "unknown pigeon"),
                       (["--runs", "5"], "--runs must be at least")):
        done = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True,
                              text=True, timeout=60, cwd=tmp_path)
        assert done.returncode == 2 and says in done.stderr, done.stderr
        assert "Traceback" not in done.stderr



def test_a_cycle_commits_its_moves_before_it_answers_and_checks_each_snapshot(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What the floor claims to measure, asked of the file on a connection of its own: when
    `Lean.cycle` returns (and only then are the task process's assignments sent) its starts
    and finishes are committed, with their attempts and events rows, and a finish moves its
    run only if its snapshot is the one its start set (a run another writer moved meanwhile
    refuses the whole transaction, which leaves nothing behind)."""
    monkeypatch.syspath_prepend(str(SCRIPT.parent))
    bench = importlib.import_module("bench_cycle_floor")
    path = str(tmp_path / "store.db")
    loop = asyncio.new_event_loop()
    store, conn = loop.run_until_complete(bench.make_db(path, 6))

    def seen(run_ids: list[str]) -> tuple[list[str], list[str], list[str]]:
        """Their statuses, event types and attempts' statuses, as another connection sees."""
        marks = ",".join("?" * len(run_ids))
        with contextlib.closing(sqlite3.connect(path)) as other:
            status = dict(other.execute("SELECT id, status FROM runs"))
            events = [t for (t,) in other.execute(
                f"SELECT type FROM events WHERE run_id IN ({marks}) ORDER BY type", run_ids)]
            attempts = [t for (t,) in other.execute(
                "SELECT attempts.status FROM attempts JOIN runs ON runs.seq = attempts.run_seq "
                f"WHERE runs.id IN ({marks})", run_ids)]
        return [status[i] for i in run_ids], events, attempts

    try:
        lean = bench.Lean(conn, "full", os.getpid())
        ids = [a["id"] for a in lean.cycle([], 2)]
        started = (["EXECUTING"] * 2, ["run.executing"] * 2, ["EXECUTING"] * 2)
        assert seen(ids) == started
        done = [{"id": i, "attempt": 1, "ok": True, "output": "null"} for i in ids]
        with contextlib.closing(sqlite3.connect(path)) as other:
            other.execute("UPDATE runs SET snapshot_id = 'snapshot_elsewhere' WHERE id = ?",
                          (ids[1],))
            other.commit()
        snapshots = dict(lean.snapshots)
        with pytest.raises(RuntimeError, match="compare-and-set"):
            lean.cycle(done, 0)
        assert seen(ids) == started  # nothing of it was kept
        lean.snapshots = {**snapshots, ids[1]: "snapshot_elsewhere"}  # as that writer left it
        assert lean.cycle(done, 0) == []
        assert seen(ids) == (["COMPLETED"] * 2, ["run.completed"] * 2 + ["run.executing"] * 2,
                             ["COMPLETED"] * 2)
    finally:
        loop.run_until_complete(store.close())
        loop.close()
