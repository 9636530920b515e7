"""Log bursts are sized as they are sent — \\u-escaped, dumps_js is ASCII — so non-ASCII lines
all arrive (review rv8d: sized by their UTF-8 bytes, a burst was up to 3x the budget on the
wire, the daemon answered 413 and its lines were lost)."""

from __future__ import annotations

from pathlib import Path

from .test_log_bursts import loud_daemon

LIMIT = 256 * 1024


def test_non_ascii_logs_over_the_limit_are_all_kept(tmp_path: Path) -> None:
    with loud_daemon(tmp_path, LIMIT) as d:
        # 3,000 bytes of UTF-8 a line (18,000 on the wire); a line of ~240 KB UTF-8 (~480 KB sent)
        run_id = d.trigger("loud", {"lines": 300, "line": "\u65e5" * 1000, "huge": 80_000,
                                    "fill": "\u65e5"})
        run = d.wait_status(run_id, timeout=120)
        assert run["status"] == "COMPLETED", run
        messages = d.log_messages(run_id)
        lines = [m for m in messages if m.startswith("line ")]
        worker_logs = [p.read_text()[-600:] for p in d.home.rglob("*.log")
                       if "workers" in str(p)]
        assert len(lines) == 300, (len(lines), [m[:80] for m in messages][:5], worker_logs)
        assert [m for m in messages if m.startswith("huge ")], messages[-3:]
        assert messages[-1] == "printed last", messages[-3:]
