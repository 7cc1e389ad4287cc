"""Turn a database URL into a Store."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from agentfleet.errors import InvalidArgument, StoreUnavailable
from agentfleet.store.base import Store

DEFAULT_URL = "sqlite:///.agentfleet/fleet.db"
SUPPORTED = "memory://, sqlite:///relative/path.db, sqlite:////absolute/path.db, postgresql://..."


def sqlite_path(url: str) -> Path:
    """SQLAlchemy convention: three slashes then a relative path, four for an absolute one."""
    rest = url[len("sqlite://") :]
    if not rest.startswith("/") or len(rest) < 2:
        raise InvalidArgument(f"SQLite URL {url!r} has no path; expected {SUPPORTED}")
    path = rest[1:]
    if "?" in path or "#" in path:
        raise InvalidArgument(f"SQLite URL {url!r} must not carry a query or fragment")
    return Path(path)


def open_store(url: str | None, **options: Any) -> Store:
    if url is None:
        url = DEFAULT_URL
    if not isinstance(url, str) or "://" not in url:
        raise InvalidArgument(f"malformed database URL {url!r}; expected one of: {SUPPORTED}")
    scheme = urlsplit(url).scheme.lower()
    if scheme == "memory":
        from agentfleet.store.memory import MemoryStore

        return MemoryStore(url=url, clock=options.get("clock"))
    if scheme == "sqlite":
        from agentfleet.store.sqlite import SqliteStore

        return SqliteStore(
            sqlite_path(url),
            url=url,
            clock=options.get("clock"),
            synchronous=options.get("synchronous", "FULL"),
        )
    if scheme in ("postgresql", "postgres"):
        if options.get("clock") is not None:
            raise InvalidArgument("PostgreSQL uses the server's clock; a clock cannot be injected")
        try:
            from agentfleet.store.postgres import PostgresStore
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise StoreUnavailable(
                "PostgreSQL support is not installed: pip install 'agentfleet[postgres]'"
            ) from exc
        return PostgresStore(
            url,
            pool_size=options.get("pool_size", 4),
            notify=options.get("notify", True),
        )
    raise InvalidArgument(
        f"unknown database URL scheme {scheme!r} in {url!r}; expected {SUPPORTED}"
    )
