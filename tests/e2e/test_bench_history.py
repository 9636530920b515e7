"""scripts/bench_history.py keeps working while the API it drives changes: its history has
issue #17's mix, and a small history builds and every list it times finds something."""

from __future__ import annotations

import random
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
sys.path.insert(0, str(SCRIPTS))

from bench_history_build import MIX, OLD_TAG, OLD_TASK, PAUSED, history_item  # noqa: E402


def test_the_history_has_the_mix_of_issue_17_and_its_rare_values_are_old() -> None:
    n, rng = 100_000, random.Random(17)
    items = [history_item(i, n, rng) for i in range(n)]
    shares = Counter(status for status, _ in items)
    for status, share in MIX:
        assert abs(shares[status] / n - share) < 0.01, (status, shares[status])
    old_task = [i for i, (_, item) in enumerate(items) if item["task"] == OLD_TASK]
    old_tag = [i for i, (_, item) in enumerate(items) if OLD_TAG in item["options"]["tags"]]
    assert len(old_task) == n // 2000 and max(old_task) < n // 100
    assert len(old_tag) == n // 1000 and max(old_tag) < n // 100
    for status, item in items[:2000]:
        options = item["options"]
        if status == "EXPIRED":
            assert item["task"] in PAUSED and options["ttl"] == "1s"
        elif status == "QUEUED":
            assert item["task"] in PAUSED and "ttl" not in options
        elif status == "DELAYED":
            assert options["delay"] == "30d"
        else:
            assert item["task"] not in PAUSED


@pytest.mark.slow
def test_a_small_history_builds_and_every_list_it_times_finds_runs(tmp_path: Path) -> None:
    """~25 s on a quiet machine, ~80 s at load 8: 10,000 runs built through the batch route,
    then the whole measurement (the wait for compaction bounded to 5 s)."""
    out = subprocess.run(
        [sys.executable, str(SCRIPTS / "bench_history.py"), "--runs", "10000", "--home",
         str(tmp_path / "h"),
         "--throughput-runs", "500", "--latency-samples", "30", "--restarts", "1",
         "--compaction-wait-s", "5"],
        capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    table = out.stdout
    for row in ("`filter[status]=EXPIRED`", f"`filter[tag]={OLD_TAG}`",
                "tokens `filter[status]=TIMED_OUT`",
                "trigger→start", "no-op throughput", "KiB per run", "finished runs are compacted"):
        assert row in table, row
    # schedules fire by the clock: a 10 s build gives them too few runs for a deep page
    for line in (line for line in table.splitlines() if "schedule" not in line):
        assert not any(gap in line for gap in ("first page empty", "deep page empty",
                                               "nothing matches")), line
    assert not (tmp_path / "h").exists(), "without --keep the bench deletes the directory it made"
