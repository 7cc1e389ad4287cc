"""Enqueue in a SQLAlchemy session's transaction.

    from agentfleet.sqlalchemy import connection_of

    with Session(engine) as session, session.begin():
        session.add(Order(...))
        fleet.enqueue("shell", {"cmd": "ship 42"}, conn=connection_of(session))

The fleet writes through the driver's connection under the session (psycopg's for
``postgresql+psycopg://``, sqlite3's for ``sqlite://``), in the session's transaction, so the
job commits or rolls back with the session's own rows. SQLAlchemy is not a dependency of
agentfleet: ``pip install 'agentfleet[sqlalchemy]'`` adds the version it is tested with.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agentfleet.errors import InvalidArgument

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection
    from sqlalchemy.orm import Session, scoped_session


def connection_of(handle: Session | scoped_session[Any] | Connection) -> Any:
    """The driver's connection under a SQLAlchemy Session (its transaction begun, as
    SQLAlchemy begins one on first use) or Connection (which must be in a transaction:
    SQLAlchemy commits the driver's transaction only when it began one itself)."""
    try:
        from sqlalchemy.engine import Connection
        from sqlalchemy.orm import Session, scoped_session
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise InvalidArgument(
            "SQLAlchemy is not installed: pip install 'agentfleet[sqlalchemy]'"
        ) from exc
    if isinstance(handle, scoped_session):
        handle = handle()
    if isinstance(handle, Session):
        handle = handle.connection()  # the session's connection, in its transaction
    if not isinstance(handle, Connection):
        kind = type(handle)
        raise InvalidArgument(
            "connection_of takes a SQLAlchemy Session or Connection, "
            f"not {kind.__module__}.{kind.__qualname__}"
        )
    if handle.closed or handle.invalidated:
        raise InvalidArgument("the SQLAlchemy connection is closed")
    if not handle.in_transaction():
        raise InvalidArgument(
            "the SQLAlchemy connection has no transaction begun, and would not commit the "
            "job: enqueue inside `with connection.begin():` (or pass the Session)"
        )
    driver = handle.connection.driver_connection
    if driver is None:  # pragma: no cover - a connection in a transaction has one
        raise InvalidArgument("the SQLAlchemy connection holds no driver connection")
    return driver


__all__ = ["connection_of"]
