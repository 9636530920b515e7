"""The store: SQLite, the only truth. Only this package imports aiosqlite or writes SQL."""

from .ops import Ops
from .sqlite import SqliteStore

__all__ = ["Ops", "SqliteStore"]
