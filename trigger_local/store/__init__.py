"""The store: the only truth. `Store` (store/interface.py) is the storage interface the engine
receives; `SqliteStore` (store/sqlite/) implements it. Only this package writes SQL."""

from .interface import Store, StoreReader, StoreTx
from .sqlite import SqliteStore

__all__ = ["SqliteStore", "Store", "StoreReader", "StoreTx"]
