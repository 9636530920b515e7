"""The packets of a PostgreSQL store (docs/scaling.md): every daemon of the database writes the
packets it takes (payloads the SDKs offload, big step results) to the `packets` table, in the
request that takes them, so any daemon can read them back; each keeps the ones it read in its
home, as its own (packet_sharing.py). On their own pool (two connections, opened at the first
packet): a packet of megabytes never waits behind a transaction, nor holds up the heartbeat."""

from __future__ import annotations

import asyncio
from typing import Any

from ...errors import DaemonStoppingError, DatabaseUnavailableError, StartupError
from .reach import reachable

#: schema.MIGRATIONS (14)
MIGRATION = """
CREATE TABLE packets (
    name TEXT COLLATE "C" PRIMARY KEY,
    project TEXT COLLATE "C",
    content_type TEXT COLLATE "C" NOT NULL,
    digest TEXT COLLATE "C" NOT NULL,
    data BYTEA NOT NULL,
    created_at DOUBLE PRECISION NOT NULL
);
"""

#: a row to write: (name, project, content type, digest, data, whether it replaces a row of
#: another project); no row back when the name is another project's packet. In the one
#: statement, so two projects uploading one name at once cannot both pass (`put`)
_PUT = """INSERT INTO packets (name, project, content_type, digest, data, created_at)
VALUES ($1, $2, $3, $4, $5, extract(epoch from clock_timestamp()))
ON CONFLICT (name) DO UPDATE SET project = excluded.project,
    content_type = excluded.content_type, digest = excluded.digest, data = excluded.data,
    created_at = excluded.created_at
WHERE $6 OR packets.project IS NOT DISTINCT FROM excluded.project
RETURNING 1"""


class PgPackets:
    """The `packets` table of the database at `url` (`connect`: store.py's `connect_pool`)."""

    def __init__(self, url: str, connect: Any) -> None:
        self._url, self._connect = url, connect
        self._pool: Any = None
        self._opening = asyncio.Lock()
        self._closed = False

    async def _conn_pool(self) -> Any:
        """The pool; DaemonStoppingError once closed, DatabaseUnavailableError (a 503) while
        the database does not answer."""
        async with self._opening:
            if self._closed:
                raise DaemonStoppingError("The daemon is stopping: retry once it runs again")
            if self._pool is None:
                try:
                    self._pool = await self._connect(self._url, 2)
                except StartupError as exc:
                    raise DatabaseUnavailableError(f"{exc}: retry") from exc
            return self._pool

    async def put(self, name: str, project: str | None, content_type: str, digest: str,
                  data: bytes, *, replace: bool = False) -> bool:
        """Write packet `name` of `project`; False (nothing written) when the table has a
        packet of that name of another project, unless `replace`."""
        pool = await self._conn_pool()
        with reachable():
            row = await pool.fetchval(_PUT, name, project, content_type, digest, data, replace)
        return row is not None

    async def head(self, name: str) -> tuple[str | None, str, str] | None:
        """(project, content type, digest) of packet `name`; None when the table has none."""
        pool = await self._conn_pool()
        with reachable():
            row = await pool.fetchrow(
                "SELECT project, content_type, digest FROM packets WHERE name = $1", name)
        return None if row is None else (row[0], row[1], row[2])

    async def get(self, name: str) -> tuple[str | None, str, str, bytes] | None:
        """(project, content type, digest, data) of packet `name`, or None."""
        pool = await self._conn_pool()
        with reachable():
            row = await pool.fetchrow(
                "SELECT project, content_type, digest, data FROM packets WHERE name = $1", name)
        return None if row is None else (row[0], row[1], row[2], bytes(row[3]))

    async def delete(self, names: list[str]) -> None:
        if names:
            pool = await self._conn_pool()
            with reachable():
                await pool.execute("DELETE FROM packets WHERE name = ANY($1::text[])", names)

    async def close(self) -> None:
        async with self._opening:
            self._closed = True
            pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()
