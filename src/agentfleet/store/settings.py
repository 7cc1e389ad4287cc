"""Fleet-wide settings (`agentfleet config`): one row per name in the database, so every
worker of the fleet reads the same value."""

from __future__ import annotations

from agentfleet.store.dialect import Dialect

_PUT = """
    INSERT INTO settings (name, value, updated_at) VALUES (:name, :value, {now})
    ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at"""


class Settings:
    """The settings table of one store."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect

    def get(self, name: str) -> str | None:
        with self.dialect.session() as tx:
            row = tx.one("SELECT value FROM settings WHERE name = :name", {"name": name})
        return None if row is None else str(row["value"])

    def put(self, name: str, value: str) -> None:
        with self.dialect.tx() as tx:
            tx.q(_PUT, {"name": name, "value": value})

    def remove(self, name: str) -> bool:
        with self.dialect.tx() as tx:
            return bool(tx.q("DELETE FROM settings WHERE name = :name RETURNING name",
                             {"name": name}))  # fmt: skip

    def all(self) -> dict[str, str]:
        with self.dialect.session() as tx:
            return {str(r["name"]): str(r["value"])
                    for r in tx.q("SELECT name, value FROM settings ORDER BY name")}  # fmt: skip

    def stamped_within(self, name: str, seconds: float) -> bool:
        """Whether `name` was stamped within the last `seconds` (a read, no write)."""
        with self.dialect.session() as tx:
            row = tx.one(
                "SELECT 1 AS x FROM settings WHERE name = :name AND updated_at > {now-:seconds}",
                {"name": name, "seconds": seconds},
            )
        return row is not None  # fmt: skip

    def touch_if_older(self, name: str, seconds: float) -> bool:
        """Stamp `name` now unless it was stamped within `seconds`: whether we did. One
        conditional write, so of callers racing past the same stamp one wins."""
        with self.dialect.tx() as tx:
            rows = tx.q(
                "INSERT INTO settings (name, value, updated_at) VALUES (:name, '', {now}) "
                "ON CONFLICT (name) DO UPDATE SET updated_at = excluded.updated_at "
                "WHERE settings.updated_at <= {now-:seconds} RETURNING name",
                {"name": name, "seconds": seconds},
            )
        return bool(rows)
