"""A run's trace (`GET /api/v1/runs/{id}/trace`) as a tree of nodes with timeline bars.

Pure data in, nodes out, so the tree's shape is tested without a terminal. Attempts hold the
spans logged during them (nested by parent span); waits say what they wait for and how long
they took; CRIU checkpoints (from the run's events) span from the dump to the restore, with
the restore under them; child runs carry their id so enter can open them."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from .common import Json, duration, parse_iso

BAR_WIDTH = 16


@dataclass
class TraceNode:
    kind: str  # run | attempt | span | wait | checkpoint | restore | checkpoint_failed | child
    label: str
    start: float | None = None
    end: float | None = None
    run_id: str | None = None  # set on child nodes: enter opens that run
    children: list[TraceNode] = field(default_factory=list)

    def walk(self) -> list[TraceNode]:
        out = [self]
        for child in self.children:
            out.extend(child.walk())
        return out


def bar(start: float | None, end: float | None, lo: float, hi: float, width: int = BAR_WIDTH) -> str:
    """`··███·····`: where [start, end] sits in the run's window [lo, hi]."""
    if start is None or hi <= lo:
        return "·" * width
    a = int((start - lo) / (hi - lo) * width)
    b = max(a + 1, int(((end if end is not None else hi) - lo) / (hi - lo) * width + 0.999))
    a, b = min(max(a, 0), width - 1), min(b, width)
    return "·" * a + "█" * (b - a) + "·" * (width - b)


def _ms(start: float | None, end: float | None) -> str:
    if start is None:
        return "—"
    return duration(((end if end is not None else time.time()) - start) * 1000) + ("" if end else "…")


def _wait_node(wait: Json) -> TraceNode:
    kind = wait.get("type", "?")
    if kind == "DATETIME":
        what = f"until {wait.get('completeAfter') or '?'}"
    elif kind == "RUN":
        what = f"run {wait.get('ownerRunId') or '?'}"
    elif kind == "BATCH":
        what = f"batch {wait.get('batchId') or '?'}"
    else:
        what = f"token {wait.get('id')}"
    start, end = parse_iso(wait.get("createdAt")), parse_iso(wait.get("completedAt"))
    label = f"wait {kind.lower()}: {what} · {wait.get('status', '?').lower()} · {_ms(start, end)}"
    return TraceNode("wait", label, start, end)


def _span_nodes(spans: list[Json], attempt: int | None) -> list[TraceNode]:
    nodes: dict[str, TraceNode] = {}
    parents: dict[str, str | None] = {}
    for span in spans:
        if span.get("attempt") not in (attempt, None):
            continue
        start, end = parse_iso(span.get("at")), parse_iso(span.get("endedAt"))
        node = TraceNode("span", f"span {span.get('message', '')} · {_ms(start, end)}", start, end)
        nodes[str(span.get("spanId"))] = node
        parents[str(span.get("spanId"))] = span.get("parentSpanId")
    roots: list[TraceNode] = []
    for span_id, node in nodes.items():
        parent = nodes.get(str(parents[span_id])) if parents[span_id] else None
        (parent.children if parent is not None else roots).append(node)
    return roots


def _size(size_bytes: Any) -> str:
    return f"{size_bytes / 2**20:.1f} MiB" if isinstance(size_bytes, int | float) and size_bytes > 0 else "? MiB"


def _checkpoint_nodes(events: list[Json], run_end: float | None) -> list[TraceNode]:
    """One node per CRIU checkpoint, its bar from the dump's start to the restore's end (the
    time the run spent as images on disk), with the restore under it; and one per refusal."""
    nodes: dict[str, TraceNode] = {}
    out: list[TraceNode] = []
    for event in events:
        data, at = event.get("data") or {}, parse_iso(event.get("at"))
        kind = event.get("type")
        if kind == "run.checkpointed" and at is not None:
            dump_ms = float(data.get("dump_ms") or 0)
            node = TraceNode("checkpoint", f"checkpoint {data.get('checkpoint_id', '?')} · "
                             f"{_size(data.get('size_bytes'))} · dump {duration(dump_ms)}", at - dump_ms / 1000, run_end)
            nodes[str(data.get("checkpoint_id"))] = node
            out.append(node)
        elif kind == "run.restored" and at is not None:
            restore_ms = float(data.get("restore_ms") or 0)
            parent = nodes.get(str(data.get("checkpoint_id")))
            restore = TraceNode("restore", f"restore · {duration(restore_ms)}", at - restore_ms / 1000, at)
            if parent is None:
                out.append(restore)
            else:
                parent.end = at
                parent.label += f" · restored after {duration((at - (parent.start or at)) * 1000)}"
                parent.children.append(restore)
        elif kind == "run.checkpoint_failed" and at is not None:
            out.append(TraceNode("checkpoint_failed", f"checkpoint failed: {data.get('reason', '?')} (held instead)",
                                 at, at))
    return out


def build_trace(trace: Json) -> TraceNode:
    run = trace.get("run") or {}
    start = parse_iso(run.get("startedAt")) or parse_iso(run.get("createdAt"))
    end = parse_iso(run.get("finishedAt"))
    root = TraceNode("run", f"{run.get('taskIdentifier', '?')} {run.get('id', '')} · {run.get('status', '?')} · "
                     f"{_ms(start, end)}", start, end, run.get("id"))
    spans = list(trace.get("spans") or [])
    attempts = list(trace.get("attempts") or [])
    for attempt in attempts:
        a_start, a_end = parse_iso(attempt.get("startedAt")), parse_iso(attempt.get("completedAt"))
        node = TraceNode("attempt", f"attempt {attempt.get('number')} · {attempt.get('status', '?').lower()} · "
                         f"{_ms(a_start, a_end)}", a_start, a_end)
        node.children = _span_nodes(spans, attempt.get("number"))
        root.children.append(node)
    if not attempts:
        root.children.extend(_span_nodes(spans, None))
    root.children.extend(_wait_node(w) for w in trace.get("waits") or [])
    root.children.extend(_checkpoint_nodes(list(trace.get("events") or []), end))
    for child in trace.get("children") or []:
        c_start = parse_iso(child.get("startedAt")) or parse_iso(child.get("createdAt"))
        c_end = parse_iso(child.get("finishedAt"))
        root.children.append(TraceNode("child", f"child {child.get('taskIdentifier', '?')} {child.get('id')} · "
                                       f"{child.get('status', '?')} · {_ms(c_start, c_end)}",
                                       c_start, c_end, child.get("id")))
    return root


def window(root: TraceNode) -> tuple[float, float]:
    """The time span the bars are drawn against: everything in the tree."""
    starts = [n.start for n in root.walk() if n.start is not None]
    ends = [n.end if n.end is not None else time.time() for n in root.walk() if n.start is not None]
    if not starts:
        return 0.0, 0.0
    return min(starts), max(ends)
