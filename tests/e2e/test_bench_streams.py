"""scripts/bench_streams.py runs: a task pipes chunks to a live reader and the script prints
its latency and throughput figures (small numbers here; docs/realtime.md has the goals)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_streams.py"


def test_the_streams_benchmark_runs_and_reads_every_chunk() -> None:
    out = subprocess.run([sys.executable, str(SCRIPT), "--chunks", "500",
                          "--latency-chunks", "50"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    figures = json.loads(out.stdout)
    latency, throughput = figures.values()
    assert latency["chunks"] == 50 and throughput["chunks"] == 500
    assert latency["p50_ms"] > 0 and throughput["chunks_per_s"] > 0
