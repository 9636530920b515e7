"""Markdown for scripts/bench_history.py: the tables it prints and appends to docs/benchmarks.md."""

from __future__ import annotations

from statistics import median
from typing import Any

from bench_history_build import Manifest
from bench_history_daemon import REPO

DOCS = REPO / "docs" / "benchmarks.md"


def ms(p: tuple[float, float]) -> str:
    return f"{p[0]:,.1f} / {p[1]:,.1f} ms"


def duration(seconds: float) -> str:
    return f"{seconds:,.0f} s" if seconds < 120 else f"{seconds / 60:,.1f} min"


def machine_line(info: dict[str, Any], load_start: str, load_end: str) -> str:
    return (f"Machine: {info['cpus']} CPUs (`nproc`), {info['ram_gib']} GiB, kernel "
            f"{info['kernel']}, Python "
            f"{info['python']}; commit `{info['commit']}`; {info['date']}; load average "
            "(1/5/15 min) "
            f"**{load_start}** at the start, **{load_end}** at the end.")


def history_line(m: Manifest, counts: dict[str, int]) -> str:
    shown = ", ".join(f"{n:,} {s}" for s, n in sorted(counts.items(), key=lambda kv: -kv[1]))
    rate = m.built / m.build_s if m.build_s else 0
    return (f"History: {m.built:,} runs built through `POST /api/v1/tasks/batch` (500 a call) in "
            f"{duration(m.build_s)} ({rate:,.0f} runs/s, settled {duration(m.settle_s)} "
            "later; built "
            f"{m.built_on.get('date', '?')} at commit `{m.built_on.get('commit', '?')}`); when "
            f"measured: {shown} "
            f"(each measurement adds ~2,600 COMPLETED runs); {len(m.versions)} versions, "
            f"{len(m.schedules)} "
            "schedules (stopped), one waitpoint token per 100 runs.")


def _sizes(tables: list[tuple[str, int, int]]) -> str:
    return "; ".join(f"{t} {size / 2**20:,.0f} MiB ({rows:,} rows)" if rows
                     else f"{t} {size / 2**20:,.0f} MiB" for t, size, rows in tables)


def figures_table(f: dict[str, Any]) -> str:
    r = f["restarts"]
    rows = [
        ("`GET /api/v1/local/status` (`trigger-local status`)", ms(f["status"])),
        ("`GET /api/v1/queues`", ms(f["queues"])),
        ("re-trigger with an old run's idempotency key (answered cached)", ms(f["retrigger"])),
        (f"trigger→start, {f['latency_samples']} sequential `stamp` runs (fresh, unpaused task)",
         ms(f["trigger_to_start"])),
        (f"no-op throughput, {f['throughput_runs']:,} runs batch-triggered 500 a call (after a "
         "warm-up 500)",
         f"**{f['throughput']:,.0f} runs/s**"),
        (f"idle stop: SIGTERM → exit ({len(r['stop_s'])} times)",
         f"median {median(r['stop_s']):.2f} s, max {max(r['stop_s']):.2f} s; "
         f"{r['cancelled_lines']} `CancelledError` lines logged"),
        ("start: spawn → `/healthz` ok",
         f"median {median(r['start_s']):.2f} s, max {max(r['start_s']):.2f} s"),
        (f"disk: database + WAL / runs, once {f['compaction']['share']:.0%} of the finished "
         f"runs are compacted (`compact_after_s` {f['compact_after_s']:g}; waited "
         f"{f['compaction']['s']:.0f} s for it)",
         f"{f['db_total'] / 2**20:,.0f} MiB / {f['runs']:,} = "
         f"**{f['db_total'] / f['runs'] / 1024:.2f} KiB per run** "
         f"({', '.join(f'{k} {v / 2**20:,.0f} MiB' for k, v in f['db'].items())})"),
        ("largest tables with their indexes (dbstat, daemon stopped)", _sizes(f["tables"])),
        ("daemon RSS: after build, idle / after the measurements",
         f"{f['rss_idle']:.0f} / {f['rss_end']:.0f} MiB"),
    ]
    return "| figure | result |\n|---|---|\n" + "\n".join(f"| {a} | {b} |" for a, b in rows)


def phases_line(phases: dict[str, float]) -> str:
    return "Time taken: " + ", ".join(f"{name} {duration(s)}" for name, s in phases.items()) + "."


def backlog_table(stages: list[dict[str, Any]]) -> str:
    empty = stages[0]
    rows = ["| backlog | trigger→start p50 / p99 | vs empty (p50) | no-op throughput | vs empty | "
            "daemon RSS |",
            "|---|---|---|---|---|---|"]
    for s in stages:
        p50, rate = s["trigger_to_start"][0], s["throughput"]
        rows.append(f"| {s['label']} | {ms(s['trigger_to_start'])} | "
                    f"{p50 / empty['trigger_to_start'][0]:.2f}× | "
                    f"{rate:,.0f} runs/s | {rate / empty['throughput']:.2f}× | "
                    f"{s['rss']:.0f} MiB |")
    return "\n".join(rows)


def append_docs(section: str) -> None:
    text = DOCS.read_text()
    DOCS.write_text(text.rstrip("\n") + "\n\n" + section.strip("\n") + "\n")
