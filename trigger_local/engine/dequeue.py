"""Taking runnable runs off their queues, in one transaction: the dispatcher's question "which
runs may start now?".

Reserved, not written: with `reserve`, a run the dispatcher starts at once stays QUEUED in the
store and is held in `ctx.reserved` (counted as running, skipped as a candidate) until its
start's unit of work moves it QUEUED → EXECUTING (engine/attempts.py `start`) or the
dispatcher lets it go (engine/front.py `requeue`). A no-op run's life is then three run
updates, not four (docs/architecture.md, "The hot path"). A run whose held process waits for
it (`worker_id`) still becomes DEQUEUED, and so does every run on a store other daemons share
(their dispatchers cannot see this one's memory); a daemon killed meanwhile leaves its
reserved runs QUEUED, as they were.
"""

from __future__ import annotations

from ..store.models import DEQUEUED, Run
from ..store.run_areas import RunningCounts
from . import ratelimits
from .events import RunDequeued
from .runs import move
from .unit import Tx


async def running_with_reserved(tx: Tx) -> RunningCounts:
    """Running runs per (project, queue, concurrency key), the runs reserved in memory (still
    QUEUED in the store, the module docstring) counted as running."""
    running = await tx.runs.running_counts()
    for kept in tx.ctx.reserved.values():
        slot = (kept.project or "", kept.queue, kept.concurrency_key)
        running[slot] = running.get(slot, 0) + 1
    return running

#: the most a page of a queue with a per-key rate limit grows to, past the runs of keys whose
#: window is closed (`_page`): a deep backlog of one refused key is not read at every round
RATE_PAGE_MAX = 1024


async def _page(tx: Tx, gate: ratelimits.RateGate | None, project: str, queue: str, page: int,
                per_key: int | None) -> list[Run]:
    """The queue's first `page` QUEUED runs, and more (up to RATE_PAGE_MAX) while its per-key
    rate limit refuses some of them (keys whose window is closed): those would fill the page,
    and a runnable run of another key behind them would wait for their window. A limit of the
    whole queue refuses every run alike: its first page is all there is to read."""
    limit = None if gate is None else gate.limits.get((project, queue))
    want = page
    while True:
        runs = await tx.runs.queued(project, queue, page, per_key=per_key)
        if gate is None or limit is None or not limit["per_key"] or len(runs) < page \
                or page >= RATE_PAGE_MAX:
            return runs
        refused = sum(gate.refuses(r, tx.now) for r in runs)
        if len(runs) - refused >= want:
            return runs
        page = min(RATE_PAGE_MAX, max(want + refused, 2 * page))


async def dequeue(tx: Tx, limit: int, held: int = 0, reserve: bool = False, *,
                  fresh: bool = False, only: Run | None = None) -> list[Run]:
    """Take up to `limit` runnable runs, plus up to `held` more that resume in the process
    holding them (a run with a `worker_id`: it needs no new process), oldest effective queue
    time first, respecting paused queues, queue and concurrency-key limits, offline projects
    (engine/project_state.py), rate limits and the global concurrency; they become DEQUEUED (or,
    with `reserve`, reserved: the module docstring) on their project's current version.
    (`limit` is the executor's room for runs that need a place: taking more of those would
    start processes beyond its boot limit, issue #13.) `fresh`: only runs that need a place (a
    hand-over in a group commit, engine/handover.py: held runs are the dispatcher's). `only`:
    the one QUEUED run in the store, its caller knows (a trigger's new run, engine/starting.py):
    no queue is read to find it, the rules above decide as for any run."""
    # first: with nothing queued (a wait or a finish in a group commit's hand-over, an idle
    # round) one index seek answers, and nothing else is read
    queued = [(only.project or "", only.queue)] if only is not None \
        else await tx.runs.queued_queues()
    if not queued:
        return []
    tx.ctx.queued_seen = True  # only ever raised here: a unit undone later cannot lower it
    if tx.ctx.projects.reloading:  # a run's project or current version may be unknown yet
        return []  # (peers.py): the reload's end wakes the dispatcher
    if tx.ctx.shared_store and tx.ctx.projects.behind(await tx.versions.generation()):
        # another daemon registered a version this cache has not read yet (its notice not
        # heard yet): a run triggered after it must not start on the version before
        return []  # (read with the dequeue's first reads: no round trip of its own)
    reserved = tx.ctx.reserved
    running = await running_with_reserved(tx)
    free = min(limit + held, tx.settings.concurrency - sum(running.values()))
    if free <= 0:
        return []
    paused, limits = await tx.queues.paused(), await tx.queues.limits()
    projects = tx.ctx.projects
    offline = projects.offline()
    gate = await ratelimits.gate(tx)
    candidates: list[Run] = []
    for project, queue in queued:
        if (project, queue) in paused or project in offline:
            continue
        qlimit = limits.get((project, queue))
        taken: dict[str | None, int] = {}
        # keys already at their limit can use up to `running` rows of the page
        in_use = sum(n for (p, q, _), n in running.items() if (p, q) == (project, queue))
        # and reserved runs, still QUEUED in the store, are skipped below
        page = (free if qlimit is None else free + in_use) + len(reserved)
        page_runs = [only] if only is not None else \
            await _page(tx, gate, project, queue, page, qlimit)
        for run in page_runs:
            if run.id in reserved:
                continue
            key = run.concurrency_key
            used = running.get((project, queue, key), 0) + taken.get(key, 0)
            if qlimit is not None and used >= qlimit:
                continue
            taken[key] = taken.get(key, 0) + 1
            candidates.append(run)
    if tx.ctx.shared_store and candidates and only is None \
            and projects.behind(await tx.versions.generation()):
        # read committed: the pages' snapshots are later than the first reads', and a version
        # registered in between must not have a run triggered after it start on the one before
        return []  # (the pages read the generation: store/postgres/runs.py `queued`)
    candidates.sort(key=lambda r: (r.queued_at, r.id))
    out: list[Run] = []
    placed = 0  # runs that need a place (not resuming in their held process)
    for run in candidates:
        if len(out) >= free:
            break
        if run.version_id is None and run.project is not None \
                and tx.ctx.shared_store and projects.current_of(run.project) is None:
            # a project another daemon registered that this one has not loaded yet (its
            # notice not heard yet): the run stays QUEUED, and the peers' next round reloads
            projects.unknown_seen = True
            continue
        tx.ctx.changed_in_place.discard(run.id)  # read now (attempts.py `_start`)
        if not run.worker_id:
            if placed >= limit:
                continue
        elif fresh:
            tx.held_left = True  # the dispatcher's, and so is every run behind it
            break
        if gate is not None and not gate.admit(run, tx.now):
            continue  # stays QUEUED, and takes no place; the gate records when its window opens
        if not run.worker_id:
            placed += 1
        current = projects.current_of(run.project)
        version_id = run.version_id or (current.id if current else None)
        if reserve and not run.worker_id:
            # its start writes these (engine/attempts.py)
            run.version_id, run.expires_at = version_id, None
            reserved[run.id] = run
            out.append(run)
            continue
        # no history row: the dispatcher starts it at once (engine/runs.py `move`)
        out.append(await move(tx, run, DEQUEUED, version_id=version_id, expires_at=None,
                              event=RunDequeued, history=False))
    if gate is not None:
        await gate.save(tx)
    return out

