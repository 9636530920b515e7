"""List figures for scripts/bench_history.py: every runs-list filter and the token list, first
page and a cursor page deep in the list, each checked to answer what it was asked."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bench_history_build import OLD_TAG, OLD_TASK, Manifest
from bench_history_daemon import Daemon, pct

RUNS, TOKENS = "/api/v1/runs", "/api/v1/waitpoints/tokens"
Item = dict[str, Any]


@dataclass
class ListCase:
    """One list request. `deep_at` names the manifest mark the deep page starts at: its cursor
    is the newest matching item created at or before that mark (p10 = 90 % of the way down a
    newest-first list; None: no deep page). `matches` says whether an answered item fits the
    filter (None: the list items do not show the field)."""

    label: str
    path: str
    params: dict[str, str]
    deep_at: str | None = "p10"
    matches: Callable[[Item], bool] | None = None


@dataclass
class ListFigure:
    label: str
    first: tuple[float, float] | None = None  # p50, p99 in ms
    deep: tuple[float, float] | None = None
    note: str = ""


def _field(name: str, value: str) -> Callable[[Item], bool]:
    return lambda item: item.get(name) == value


def _tagged(tag: str, key: str = "tags") -> Callable[[Item], bool]:
    return lambda item: tag in (item.get(key) or [])


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def _created_ms(d: Daemon, path: str, item_id: str) -> float:
    """An item's createdAt in epoch ms, rounded up so `filter[createdAt][to]` includes it."""
    r = d.http.get(f"{path}/{item_id}" if path == TOKENS else f"/api/v3/runs/{item_id}")
    r.raise_for_status()
    return _epoch(r.json()["createdAt"]) * 1000 + 1


def run_cases(d: Daemon, m: Manifest) -> list[ListCase]:
    """Every documented runs-list filter, with a common and a rare value where it has both."""
    c = ListCase
    window = {"filter[createdAt][from]": f"{_created_ms(d, RUNS, m.marks['p40']) - 1:.0f}",
              "filter[createdAt][to]": f"{_created_ms(d, RUNS, m.marks['p60']):.0f}"}
    lo = float(window["filter[createdAt][from]"]) / 1000
    hi = float(window["filter[createdAt][to]"]) / 1000
    cases = [c("no filter", RUNS, {})]
    cases += [c(f"`filter[status]={s}`", RUNS, {"filter[status]": s}, matches=_field("status", s))
              for s in ("COMPLETED", "EXPIRED", "QUEUED", "DELAYED")]
    cases += [c(f"`filter[taskIdentifier]={t}` ({why})", RUNS, {"filter[taskIdentifier]": t},
                matches=_field("taskIdentifier", t))
              for t, why in (("sync", "44 % of runs"), ("noop", "19 %"),
                             (OLD_TASK, "rare, first 1 % only"))]
    cases += [c(f"`filter[tag]={t}` ({why})", RUNS, {"filter[tag]": t}, matches=_tagged(t))
              for t, why in (("prod", "50 % of runs"), ("nightly", "10 %"),
                             (OLD_TAG, "rare, first 1 % only"))]
    cases += [c(f"`filter[queue]={q}`", RUNS, {"filter[queue]": q}, matches=_field("queue", q))
              for q in ("task/noop", "exports")]
    cases += [c(f"`filter[version]=` {which} version", RUNS, {"filter[version]": v}, deep_at=mark)
              for (which, mark), v in zip((("the first (older half)", "p10"),
                                           ("the second (newer half)", "p60")),
                                          m.versions, strict=False)]
    cases.append(c("`filter[createdAt][from/to]` (40–60 % of the history)", RUNS, window,
                   deep_at="p42",
                   matches=lambda item: lo <= _epoch(item["createdAt"]) <= hi + 0.001))
    cases += [c(f"`filter[schedule]=` the {which} schedule", RUNS, {"filter[schedule]": s},
                deep_at="p50")
              for which, s in zip(("every-2 s", "every-15 s"), m.schedules, strict=False)]
    cases += [c(f"`filter[batch]=` the {which} batch", RUNS, {"filter[batch]": b}, deep_at=None)
              for which, b in (("oldest", m.batches["old"]), ("newest", m.batches["recent"]))]
    key = m.keys["old_run"]
    cases.append(c("`filter[idempotencyKey]=` an old run's key", RUNS,
                   {"filter[idempotencyKey]": key},
                   deep_at=None, matches=_field("idempotencyKey", key)))
    return cases


def token_cases(m: Manifest) -> list[ListCase]:
    c, key = ListCase, m.keys["old_token"]
    cases = [c("tokens, no filter", TOKENS, {})]
    cases += [c(f"tokens `filter[status]={s}`", TOKENS, {"filter[status]": s},
                matches=_field("status", s))
              for s in ("WAITING", "COMPLETED", "TIMED_OUT")]
    cases += [c(f"tokens `filter[tags]={t}`", TOKENS, {"filter[tags]": t}, matches=_tagged(t))
              for t in ("prod", OLD_TAG)]
    cases.append(c("tokens `filter[idempotencyKey]=` an old token's key", TOKENS,
                   {"filter[idempotencyKey]": key}, deep_at=None,
                   matches=_field("idempotencyKey", key)))
    return cases


def _sample(d: Daemon, path: str, params: dict[str, str],
            samples: int) -> tuple[tuple[float, float], list[Item]]:
    times, items = [], []
    for _ in range(samples):
        started = time.perf_counter()
        r = d.http.get(path, params=params)
        times.append((time.perf_counter() - started) * 1000)
        if r.status_code != 200:
            raise SystemExit(f"GET {path} {params}: {r.status_code} {r.text[:500]}")
        items = r.json()["data"]
    return (pct(times, 50), pct(times, 99)), items


def _deep_cursor(d: Daemon, m: Manifest, case: ListCase) -> str | None:
    assert case.deep_at is not None
    marks = m.token_marks if case.path == TOKENS else m.marks
    to = _created_ms(d, case.path, marks[case.deep_at])
    params = {**case.params, "filter[createdAt][to]": f"{to:.0f}", "page[size]": "1"}
    data = d.http.get(case.path, params=params).json()["data"]
    return str(data[0]["id"]) if data else None


def measure_case(d: Daemon, m: Manifest, case: ListCase, samples: int) -> ListFigure:
    """p50/p99 of the first page, then of the page after a deep cursor."""
    figure = ListFigure(case.label)
    figure.first, items = _sample(d, case.path, case.params, samples)
    if not items:
        figure.note = "first page empty"
    elif case.matches is not None and not all(case.matches(item) for item in items):
        figure.note = "**not filtered**: the answer ignores this parameter"
        return figure
    if case.deep_at is None:
        return figure
    cursor = _deep_cursor(d, m, case)
    if cursor is None:
        figure.note = f"nothing matches before the {case.deep_at} mark"
        return figure
    figure.deep, items = _sample(d, case.path, {**case.params, "page[after]": cursor}, samples)
    notes = [figure.note] if figure.note else []
    if case.deep_at != "p10":
        notes.append(f"cursor at the {case.deep_at} mark")
    if not items:
        notes.append("deep page empty")
    figure.note = "; ".join(notes)
    return figure


def measure_lists(d: Daemon, m: Manifest, samples: int,
                  log: Callable[[str], None]) -> list[ListFigure]:
    figures = []
    for case in run_cases(d, m) + token_cases(m):
        started = time.perf_counter()
        figures.append(measure_case(d, m, case, samples))
        log(f"  {case.label}: {_cell(figures[-1].first)} | deep {_cell(figures[-1].deep)} "
            f"({time.perf_counter() - started:.1f} s) {figures[-1].note}")
    return figures


def _cell(p: tuple[float, float] | None) -> str:
    return "—" if p is None else f"{p[0]:,.1f} / {p[1]:,.1f}"


def list_table(figures: list[ListFigure], samples: int) -> str:
    rows = ["| list request (page of 25) | first page p50 / p99 ms | deep cursor page p50 / "
            "p99 ms | note |",
            "|---|---|---|---|"]
    rows += [f"| {f.label} | {_cell(f.first)} | {_cell(f.deep)} | {f.note} |" for f in figures]
    return "\n".join(rows) + f"\n\n{samples} samples per cell (p99 of 30 is the slowest sample)."
