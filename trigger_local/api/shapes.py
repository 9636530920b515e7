"""What a realtime shape is: the runs a subscription follows, and how to find their changes.

A shape is one run, the runs carrying every one of a set of tags (created after a time), or a
batch's runs. Its changes are read from the durable events table after an offset, the event
seq, so an offset is all a subscriber needs to come back: it gets exactly the changes after it
(api/realtime.py). Handles are stateless: they name the shape (and fix a tag feed's time
window), so any daemon process, a restarted one included, answers any handle."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..errors import BadRequestError, NotFoundError
from ..store.interface import StoreReader
from ..store.models import Run
from .auth import Caller

PAGE = 500
#: most runs a tag feed's snapshot holds (Trigger.dev's limit too)
SNAPSHOT_LIMIT = 1000
#: event types that do not change a run's row (log lines have their own stream)
_NOT_ROW_CHANGES = ("run.logs",)
_DURATION = re.compile(r"^(?:\d{1,9}(?:w|d|hr|h|m|s))+$")
_PART = re.compile(r"(\d+)(w|d|hr|h|m|s)")
_UNIT_S = {"w": 604800, "d": 86400, "hr": 3600, "h": 3600, "m": 60, "s": 1}
_BAD_TAG = re.compile(r'[\x00-\x1f\x7f\\"]')


def created_window(value: str | None) -> float:
    """`createdAt=2h` → seconds (Trigger.dev's default: 24h); 400 for anything else."""
    if value is None or value == "":
        return 86400.0
    if not _DURATION.fullmatch(value):
        raise BadRequestError(f"Invalid createdAt {value!r}: use a duration such as 2h, 30m or "
                              "1d2h")
    return float(sum(int(n) * _UNIT_S[unit] for n, unit in _PART.findall(value)))


def check_tags(tags: list[str]) -> list[str]:
    for tag in tags:
        if not tag or _BAD_TAG.search(tag) or len(tag) > 128:
            raise BadRequestError(f'Invalid tag: "{tag[:128]}"')
    return tags


@dataclass
class Shape:
    """The runs one subscription follows. `kind`: run | tags | batch."""

    kind: str
    caller: Caller
    run_id: str = ""
    tags: list[str] = field(default_factory=list)
    since: float = 0.0
    batch_id: str = ""

    @property
    def handle(self) -> str:
        if self.kind == "run":
            return f"run-{self.run_id}"
        if self.kind == "batch":
            return f"batch-{self.batch_id}"
        return f"runs-{int(self.since * 1000)}"

    def fix_window(self, handle: str | None, now: float, window_s: float) -> None:
        """A tag feed's window is fixed by its first answer: later requests carry it back in
        their handle."""
        prefix = "runs-"
        if handle and handle.startswith(prefix) and handle[len(prefix):].isdigit():
            self.since = int(handle[len(prefix):]) / 1000
        else:
            self.since = now - window_s

    def matches(self, run: Run) -> bool:
        if not self.caller.sees(run.project):
            return False
        if self.kind == "run":
            return run.id == self.run_id
        if self.kind == "batch":
            return run.batch_id == self.batch_id
        return run.created_at >= self.since and set(self.tags) <= set(run.tags)

    async def snapshot(self, read: StoreReader) -> list[Run]:
        """Every run of the shape now, oldest first."""
        if self.kind == "run":
            run = await read.runs.get(self.run_id)
            if run is None or not self.matches(run):
                raise NotFoundError("Run not found", run_id=self.run_id)
            return [run]
        if self.kind == "batch":
            batch = await read.batches.get(self.batch_id)
            if batch is None:
                raise NotFoundError("Batch not found", batch_id=self.batch_id)
            return [r for r in await read.runs.get_many(batch.run_ids) if self.matches(r)]
        page = await read.runs.page(tags=self.tags[:1] or None, created_from=self.since,
                                    limit=SNAPSHOT_LIMIT)
        return sorted((r for r in page if self.matches(r)), key=lambda r: (r.created_at, r.id))

    async def changes(self, read: StoreReader, after: int) -> tuple[list[Run], int]:
        """The shape's runs that changed after event `after`, in the order of their first
        change, and the seq read up to."""
        changed: dict[str, None] = {}
        only = self.run_id if self.kind == "run" else None
        while True:
            events = await read.events.after(after, PAGE, only)
            for event in events:
                after = event.seq
                if event.run_id and not event.type.startswith(_NOT_ROW_CHANGES):
                    changed.setdefault(event.run_id)
            if len(events) < PAGE:
                break
        if not changed:
            return [], after
        runs = {r.id: r for r in await read.runs.get_many(list(changed))}
        return [runs[i] for i in changed if i in runs and self.matches(runs[i])], after
