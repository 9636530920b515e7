"""The storage interface on PostgreSQL (asyncpg): several daemons may share one database."""

from .store import PostgresStore

__all__ = ["PostgresStore"]
