"""scripts/bench_floor.py runs its servers and reads both sides' CPU: (a) a bare server, (a')
the same committing a row per request, (b) the daemon's HTTP stack (small numbers here;
docs/benchmarks.md has the figures)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_floor.py"


def test_the_floor_benchmark_answers_every_request_of_each_server(tmp_path: Path) -> None:
    out = tmp_path / "floor.json"
    done = subprocess.run([sys.executable, str(SCRIPT), "--requests", "60", "--only",
                           "bare,commit,stack", "--json", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(out.read_text())
    for kind in ("bare", "commit", "stack"):
        assert figures[kind]["requests"] == 60 and figures[kind]["per_s"] > 0
        assert figures[kind]["answer_p50_ms"] > 0 and figures[kind]["server_cpu_us"] >= 0
    assert "(a') bare asyncio, a row committed per request" in done.stdout
