"""`open_catalog_store(url)`: the catalog store a URL names (the one place that knows every backend)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from orchestrator.errors import InvalidInput
from orchestrator.stores.catalog_store import CatalogStore

StoreOpener = Callable[[str], Awaitable[CatalogStore]]


async def open_catalog_store(url: str, *, server_selection_timeout_s: float = 5.0) -> CatalogStore:
    """Opens the store a URL names.

    sqlite:///runs/catalog.db   relative path (SQLAlchemy convention); sqlite:////abs/path.db absolute;
                                sqlite:///:memory: in memory. The schema is created on open.
    mongodb://host/dbname, mongodb+srv://...   database from the path, default "snapfit"; no I/O until the first
                                call (ping() or any query creates the unique index).
    """
    from orchestrator.stores.mongo_store import MongoCatalogStore
    from orchestrator.stores.sqlite_store import SQLiteCatalogStore

    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme == "sqlite":
        if not url.startswith("sqlite:///") or len(url) == len("sqlite:///"):
            raise InvalidInput(f"a SQLite catalog URL looks like sqlite:///path/to/catalog.db, got {url!r}")
        return await SQLiteCatalogStore.open(url[len("sqlite:///"):])
    if scheme in ("mongodb", "mongodb+srv"):
        return MongoCatalogStore.connect(url, server_selection_timeout_s=server_selection_timeout_s)
    raise InvalidInput(f"unsupported catalog URL {url!r}: use sqlite:///PATH, mongodb://... or mongodb+srv://...")
