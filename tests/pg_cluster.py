"""A private PostgreSQL cluster for the tests: initdb into a temporary directory, `pg_ctl start`
on a loopback port, `stop` and remove it at the end. Debian's `postgresql` package provides the
binaries (scripts/setup-postgres.sh); initdb refuses to run as root, so as root the cluster runs
as the `postgres` user.

Each test gets its own schema (`Cluster.fresh_url()`: a URL whose `search_path` names it), which
is much cheaper than a database per test. Without PostgreSQL the tests that need it skip with the
reason printed, except under CI=true, where they fail."""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from tests.host_limit import host_limit

_counter = itertools.count(1)


def pg_bin() -> Path | None:
    """The directory of initdb / pg_ctl / postgres, or None."""
    found = shutil.which("pg_ctl")
    candidates = [str(Path(found).resolve().parent)] if found else []
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    for directory in candidates:
        if all(os.access(Path(directory, b), os.X_OK) for b in ("initdb", "pg_ctl", "postgres")):
            return Path(directory)
    return None


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def require_postgres() -> Path:
    """The binaries' directory; otherwise skip (fail under CI=true) with the reason printed."""
    found = pg_bin()
    if found is not None:
        return found
    message = ("PostgreSQL tests need Debian's postgresql package (initdb, pg_ctl): "
               "run scripts/setup-postgres.sh")
    host_limit(message)


class Cluster:
    """One PostgreSQL server on `host:port`, its data in a fresh temporary directory."""

    def __init__(self, bin_dir: Path, host: str = "127.0.0.1", port: int | None = None,
                 prefix: tuple[str, ...] = (), listen: str = "") -> None:
        self.bin, self.host = bin_dir, host
        self.port = port or free_port(host)
        #: the addresses the server listens on (default: `host`)
        self.listen = listen or host
        #: run every server command under this prefix (`ip netns exec NS` for a namespace)
        self.prefix = prefix
        self.dir = Path(tempfile.mkdtemp(prefix="trigger-local-pg-"))
        self.data = self.dir / "data"
        self._user = "postgres" if os.geteuid() == 0 else None

    def _cmd(self, *args: str) -> list[str]:
        as_user = ["runuser", "-u", self._user, "--"] if self._user else []
        return [*self.prefix, *as_user, *args]

    def start(self) -> Cluster:
        if self._user:
            entry = pwd.getpwnam(self._user)
            os.chown(self.dir, entry.pw_uid, entry.pw_gid)
        subprocess.run(self._cmd(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres",
                                 "--auth=trust", "-E", "UTF8", "--locale=C", "-N"),
                       check=True, capture_output=True, timeout=120)
        if self.listen != "127.0.0.1":  # initdb trusts loopback only; this is a test subnet
            with (self.data / "pg_hba.conf").open("a") as hba:
                hba.write("host all all 0.0.0.0/0 trust\n")
        return self.serve()

    def serve(self) -> Cluster:
        """Start the server on the cluster's data (again, after `halt`)."""
        options = (f"-p {self.port} -k {self.dir} -c listen_addresses={self.listen} "
                   "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
                   "-c max_connections=300")
        subprocess.run(self._cmd(str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", options,
                                 "-l", str(self.dir / "server.log"), "-w", "-t", "60", "start"),
                       check=True, capture_output=True, timeout=90)
        return self

    def halt(self) -> None:
        """Stop the server, keeping its data (`serve` starts it again): a database restart."""
        subprocess.run(self._cmd(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast",
                                 "-w", "stop"), check=True, capture_output=True, timeout=60)

    @property
    def url(self) -> str:
        return f"postgresql://postgres@{self.host}:{self.port}/postgres"

    def psql(self, sql: str) -> str:
        out = subprocess.run([*self.prefix, "psql", "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1",
                              "-d", self.url, "-c", sql],
                             check=True, capture_output=True, text=True, timeout=60)
        return out.stdout

    def fresh_url(self) -> str:
        """A URL to a new, empty schema of its own (tables land there: `search_path`)."""
        schema = f"t{os.getpid()}_{next(_counter)}"
        self.psql(f"CREATE SCHEMA {schema}")
        return f"{self.url}?sslmode=disable&search_path={schema}"

    def stop(self) -> None:
        subprocess.run(self._cmd(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m",
                                 "immediate", "-w", "stop"), capture_output=True, timeout=60)
        shutil.rmtree(self.dir, ignore_errors=True)


async def schema_at(conn: Any, version: int) -> None:
    """The schema as the first `version` migrations made it, in `conn`'s schema and its
    transaction: a database an older daemon left, for what a newer one does with it."""
    from trigger_local.store.postgres.schema import MIGRATIONS
    from trigger_local.store.postgres.store import _SCHEMA_VERSION
    await conn.execute(_SCHEMA_VERSION)
    for sql in MIGRATIONS[:version]:
        await conn.execute(sql)
    await conn.execute("INSERT INTO schema_version (version) VALUES ($1)", version)
