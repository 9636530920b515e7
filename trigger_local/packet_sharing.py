"""Packets on a store several daemons share (PostgreSQL, docs/scaling.md): each daemon keeps
packets as files in its home (packet_store.py), and writes each packet it takes to the store
(`Store.packets`, store/postgres/packets.py) first, before its file and before it answers the
request that gave it; the store refuses a project's upload of a name that is another
project's packet, in the write itself (two uploads of one name may pass their checks at once).
Before a daemon uses a packet (its owner check, serving it, a run's payload or replayed step
result) it `hold`s it: the store's row says which packet the name is (project, content type,
digest); a home file that matches is used as it is, one that does not (another daemon's
packet, or one uploaded again there) is replaced by the row's, and one whose row is gone
(retention on another daemon) is deleted. A home's file that was never the store's (a packet
stored before the store had packets) stays the packet while the store has no row of that name.

On SQLite (`Store.packets` None) the home's files are the packets, as they always were."""

from __future__ import annotations

from pathlib import Path

import structlog

from . import packet_store
from .errors import NotFoundError
from .store.interface import SharedPackets
from .store.models import Run, RunStep

log = structlog.get_logger("packets")


async def write(shared: SharedPackets | None, home: Path, name: str, data: bytes,
                content_type: str, project: str | None = None) -> None:
    """Store a packet in the home and, when daemons share the store, in the store first
    (ValueError as packet_store.write). NotFoundError, writing nothing, when the store's packet
    of that name is another project's: an owner check before this call can have raced
    another upload of the name (`SharedPackets.put`). The row is written before the file: a
    home's file is only ever a packet the store has had."""
    if shared is None:
        packet_store.write(home, name, data, content_type, project)
        return
    packet_store.writable(home, name)  # a name this home cannot keep: 400, nothing written
    sha = packet_store.digest(data)
    if not await shared.put(name, project, content_type, sha, data):
        raise NotFoundError("Packet not found", name=name)
    packet_store.write(home, name, data, content_type, project, shared=True, sha=sha)


async def offload(shared: SharedPackets | None, home: Path, name: str, data: str | None,
                  data_type: str) -> tuple[str | None, str]:
    """packet_store.offload, with the packet also in a shared store (written there first; the
    name is the daemon's own, `steps/...`, so it replaces any packet of that name)."""
    if shared is None or data is None or not packet_store.offloads(data):
        return packet_store.offload(home, name, data, data_type)
    raw = data.encode()
    packet_store.writable(home, name)
    sha = packet_store.digest(raw)
    await shared.put(name, None, data_type, sha, raw, replace=True)
    packet_store.write(home, name, raw, data_type, shared=True, sha=sha)
    return name, packet_store.STORE


async def hold(shared: SharedPackets | None, home: Path, name: str) -> None:
    """Make the home's file of packet `name` the store's packet of that name (the module
    docstring); nothing on SQLite, nor for a name that cannot be a packet's."""
    if shared is None or packet_store.name_problem(name) is not None:
        return
    here = packet_store.held(home, name)
    there = await shared.head(name)
    if there is None:
        if here is not None and here[1]:  # it was the store's and has left it: retention
            packet_store.delete(home, name)
        return
    if here is not None and here[0] == there:
        return
    found = await shared.get(name)
    if found is None:  # deleted meanwhile
        packet_store.delete(home, name)
        return
    project, content_type, _, data = found
    try:
        packet_store.write(home, name, data, content_type, project, shared=True)
    except ValueError as exc:  # this home has a packet where its directory would be
        log.warning("cannot keep a packet of the store in this home", name=name[:60],
                    error=str(exc))


async def hold_run(shared: SharedPackets | None, home: Path, run: Run,
                   records: list[RunStep]) -> None:
    """Hold the packets an assignment of `run` reads: its payload and replayed step results."""
    if shared is None:
        return
    if run.payload_type == packet_store.STORE and run.payload:
        await hold(shared, home, run.payload)
    for step in records:
        if step.result_type == packet_store.STORE and step.result:
            await hold(shared, home, step.result)


async def delete(shared: SharedPackets | None, home: Path, names: list[str]) -> None:
    """Remove packets (retention): the store's rows, then the home's files (a hold meanwhile
    finds its file still the row's, or the row gone; never the row to fetch again)."""
    if shared is not None:
        await shared.delete(names)
    for name in names:
        packet_store.delete(home, name)
