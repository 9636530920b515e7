"""The SQLite implementation of the storage interface."""

from .store import SqliteStore, SqliteView

__all__ = ["SqliteStore", "SqliteView"]
