"""A run's trace (`GET /api/v1/runs/{id}/trace`) as a tree of nodes with timeline bars.

Pure data in, nodes out, so the tree's shape is tested without a terminal. Attempts hold the
spans logged during them (nested by parent span); waits say what they wait for; CRIU
checkpoints (from the run's events) span from the dump to the restore, with the restore under
them; child runs carry their id so enter can open them. A node's label holds what does not
change; how long it took (still running: until `now`) is added when it is drawn, so the
durations of a live run move on without reading the trace again."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from trigger_local.display import MISSING, duration_text, epoch_s, table_time, visible
from trigger_local.statuses import WaitpointType

from .common import Json

BAR_WIDTH = 16


@dataclass
class TraceNode:
    kind: str  # run | attempt | span | wait | checkpoint | restore | checkpoint_failed | child
    label: str
    start: float | None = None
    end: float | None = None
    run_id: str | None = None  # set on child nodes: enter opens that run
    children: list[TraceNode] = field(default_factory=list)
    #: drawn with how long it took (checkpoints and restores carry their own times)
    timed: bool = True

    @property
    def open(self) -> bool:
        """Started and not ended: its bar (and its duration) grow until it ends."""
        return self.start is not None and self.end is None

    def text(self, now: float) -> str:
        """The label, and how long it took (`…` while it runs)."""
        return f"{self.label} · {took(self.start, self.end, now)}" if self.timed else self.label

    def walk(self) -> list[TraceNode]:
        out = [self]
        for child in self.children:
            out.extend(child.walk())
        return out


def bar(start: float | None, end: float | None, lo: float, hi: float,
        width: int = BAR_WIDTH) -> str:
    """`··███·····`: where [start, end] sits in the run's window [lo, hi]."""
    if start is None or hi <= lo:
        return "·" * width
    a = int((start - lo) / (hi - lo) * width)
    b = max(a + 1, int(((end if end is not None else hi) - lo) / (hi - lo) * width + 0.999))
    a, b = min(max(a, 0), width - 1), min(b, width)
    return "·" * a + "█" * (b - a) + "·" * (width - b)


def took(start: float | None, end: float | None, now: float) -> str:
    if start is None:
        return MISSING
    ms = ((end if end is not None else now) - start) * 1000
    return (duration_text(ms) if ms >= 1 else "<1ms") + ("" if end is not None else "…")


def _wait_node(wait: Json) -> TraceNode:
    """`wait until 14:03:22`, or `wait for` the run, batch or token (their ids say which)."""
    kind = wait.get("type")
    if kind == WaitpointType.DATETIME:
        what = f"until {table_time(wait.get('completeAfter'))}"
    elif kind == WaitpointType.RUN:
        what = f"for {wait.get('ownerRunId') or '?'}"
    elif kind == WaitpointType.BATCH:
        what = f"for {wait.get('batchId') or '?'}"
    else:
        what = f"for {wait.get('id')}"
    start, end = epoch_s(wait.get("createdAt")), epoch_s(wait.get("completedAt"))
    return TraceNode("wait", f"wait {what} · {str(wait.get('status', '?')).lower()}", start, end)


def _span_nodes(spans: list[Json], attempt: int | None) -> list[TraceNode]:
    nodes: dict[str, TraceNode] = {}
    parents: dict[str, str | None] = {}
    for span in spans:
        if span.get("attempt") not in (attempt, None):
            continue
        start, end = epoch_s(span.get("at")), epoch_s(span.get("endedAt"))
        node = TraceNode("span", visible(f"span {span.get('message', '')}"), start, end)
        nodes[str(span.get("spanId"))] = node
        parents[str(span.get("spanId"))] = span.get("parentSpanId")
    roots: list[TraceNode] = []
    for span_id, node in nodes.items():
        parent = nodes.get(str(parents[span_id])) if parents[span_id] else None
        (parent.children if parent is not None else roots).append(node)
    return roots


def _size(size_bytes: Any) -> str:
    if isinstance(size_bytes, int | float) and size_bytes > 0:
        return f"{size_bytes / 2**20:.1f} MiB"
    return "? MiB"


def _checkpoint_nodes(events: list[Json], run_end: float | None) -> list[TraceNode]:
    """One node per CRIU checkpoint, its bar from the dump's start to the restore's end (the
    time the run spent as images on disk), with the restore under it; and one per refusal."""
    nodes: dict[str, TraceNode] = {}
    out: list[TraceNode] = []
    for event in events:
        data, at = event.get("data") or {}, epoch_s(event.get("at"))
        kind = event.get("type")
        if kind == "run.checkpointed" and at is not None:
            dump_ms = float(data.get("dump_ms") or 0)
            node = TraceNode("checkpoint", f"{data.get('checkpoint_id', 'checkpoint ?')} · "
                             f"{_size(data.get('size_bytes'))} · dump {duration_text(dump_ms)}",
                             at - dump_ms / 1000, run_end, timed=False)
            nodes[str(data.get("checkpoint_id"))] = node
            out.append(node)
        elif kind == "run.restored" and at is not None:
            restore_ms = float(data.get("restore_ms") or 0)
            parent = nodes.get(str(data.get("checkpoint_id")))
            restore = TraceNode("restore", f"restore {duration_text(restore_ms)}",
                                at - restore_ms / 1000, at, timed=False)
            if parent is None:
                out.append(restore)
            else:
                parent.end = at
                restore.label += (" · restored after "
                                  f"{duration_text((at - (parent.start or at)) * 1000)}")
                parent.children.append(restore)
        elif kind == "run.checkpoint_failed" and at is not None:
            out.append(TraceNode("checkpoint_failed",
                                 f"checkpoint failed: {data.get('reason', '?')} (held instead)",
                                 at, at, timed=False))
    return out


def build_trace(trace: Json) -> TraceNode:
    run = trace.get("run") or {}
    start = epoch_s(run.get("startedAt")) or epoch_s(run.get("createdAt"))
    end = epoch_s(run.get("finishedAt"))
    root = TraceNode("run",
                     f"{run.get('taskIdentifier', '?')} {run.get('id', '')} · "
                     f"{run.get('status', '?')}",
                     start, end, run.get("id"))
    spans = list(trace.get("spans") or [])
    attempts = list(trace.get("attempts") or [])
    for attempt in attempts:
        a_start, a_end = epoch_s(attempt.get("startedAt")), epoch_s(attempt.get("completedAt"))
        node = TraceNode("attempt",
                         f"attempt {attempt.get('number')} · "
                         f"{str(attempt.get('status', '?')).lower()}",
                         a_start, a_end)
        node.children = _span_nodes(spans, attempt.get("number"))
        root.children.append(node)
    if not attempts:
        root.children.extend(_span_nodes(spans, None))
    root.children.extend(_wait_node(w) for w in trace.get("waits") or [])
    root.children.extend(_checkpoint_nodes(list(trace.get("events") or []), end))
    for child in trace.get("children") or []:
        c_start = epoch_s(child.get("startedAt")) or epoch_s(child.get("createdAt"))
        c_end = epoch_s(child.get("finishedAt"))
        root.children.append(TraceNode("child",
                                       f"child {child.get('taskIdentifier', '?')} "
                                       f"{child.get('id')} · "
                                       f"{child.get('status', '?')}", c_start, c_end,
                                       child.get("id")))
    if end is not None:  # what the run still did or waited on when it ended stops there (a child
        for node in root.walk():  # run lives on by itself)
            if node.open and node.kind != "child":
                node.end = end
    return root


def window(root: TraceNode, now: float) -> tuple[float, float]:
    """The time span the bars are drawn against: everything in the tree, open nodes until now."""
    starts = [n.start for n in root.walk() if n.start is not None]
    ends = [n.end if n.end is not None else now for n in root.walk() if n.start is not None]
    if not starts:
        return 0.0, 0.0
    return min(starts), max(ends)
