"""Turn a database URL into a Store."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from agentfleet.errors import InvalidArgument, StoreUnavailable
from agentfleet.store.base import Store

DEFAULT_URL = "sqlite:///.agentfleet/fleet.db"
DEFAULT_PATH = Path(".agentfleet") / "fleet.db"
SUPPORTED = "memory://, sqlite:///relative/path.db, sqlite:////absolute/path.db, postgresql://..."
# PostgreSQL: `?pool_size=N` in the URL caps the handle's pool (default 4; a worker's 1) and
# wins over the pool_size option; every other query parameter is libpq's.


def sqlite_path(url: str) -> Path:
    """SQLAlchemy convention: three slashes then a relative path, four for an absolute one."""
    rest = url[len("sqlite://") :]
    if not rest.startswith("/") or len(rest) < 2:
        raise InvalidArgument(f"SQLite URL {url!r} has no path; expected {SUPPORTED}")
    path = rest[1:]
    if "?" in path or "#" in path:
        raise InvalidArgument(f"SQLite URL {url!r} must not carry a query or fragment")
    return Path(path)


def find_database(start: Path | None = None) -> Path | None:
    """The nearest `.agentfleet/fleet.db` in this folder or any folder above it, as git
    finds `.git`: a command run from a subfolder of a project uses the project's fleet."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / DEFAULT_PATH
        if candidate.is_file():
            return candidate
    return None


def default_url(start: Path | None = None) -> str:
    """The nearest default database, or a new one in this folder when there is none."""
    found = find_database(start)
    return f"sqlite:///{found}" if found is not None else DEFAULT_URL


def open_store(url: str | None, **options: Any) -> Store:
    if url is None:
        url = default_url()
    if not isinstance(url, str) or "://" not in url:
        raise InvalidArgument(f"malformed database URL {url!r}; expected one of: {SUPPORTED}")
    scheme = urlsplit(url).scheme.lower()
    if scheme == "memory":
        from agentfleet.store.memory import MemoryStore

        return MemoryStore(url=url, clock=options.get("clock"))
    if scheme == "sqlite":
        from agentfleet.store.sqlite import SqliteStore

        durability = {"synchronous": options["synchronous"]} if "synchronous" in options else {}
        return SqliteStore(sqlite_path(url), url=url, clock=options.get("clock"), **durability)
    if scheme in ("postgresql", "postgres"):
        if options.get("clock") is not None:
            raise InvalidArgument("PostgreSQL uses the server's clock; a clock cannot be injected")
        try:
            from agentfleet.store.postgres import DEFAULT_POOL_SIZE, PostgresStore
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise StoreUnavailable(
                "PostgreSQL support is not installed: pip install 'agentfleet[postgres]'"
            ) from exc
        return PostgresStore(
            url,
            pool_size=options.get("pool_size", DEFAULT_POOL_SIZE),
            notify=options.get("notify", True),
            application_name=options.get("application_name") or "agentfleet",
        )
    raise InvalidArgument(
        f"unknown database URL scheme {scheme!r} in {url!r}; expected {SUPPORTED}"
    )
