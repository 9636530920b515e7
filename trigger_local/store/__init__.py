"""The store: SQLite, the only truth. Only this package imports aiosqlite or writes SQL."""

from .sqlite import Ops, SqliteStore

__all__ = ["Ops", "SqliteStore"]
