"""scripts/bench_cycle_floor.py end to end with a tiny run count, so that it does not rot: every
variant on both transports completes (a real task process, a real store file), the store holds
every run COMPLETED with the rows its variant writes, and the figures are sane."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

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
