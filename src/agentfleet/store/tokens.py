"""API tokens with a role (`agentfleet tokens create`), kept in the database.

A token reads ``aft_<id>_<secret>``: `id` is 12 hex characters naming its row, `secret` 32
random bytes (URL-safe base64). Only the SHA-256 of the secret is stored, never the secret.
A fast hash is enough here: a slow KDF protects secrets people choose, which are guessable;
a secret of 256 random bits cannot be guessed, by brute force or a dictionary, from its hash.
A lookup reads the row by id and compares the hashes in constant time
(:func:`hmac.compare_digest`), so timing says nothing about the secret.

Nothing about validity is cached: every request reads the row, so a revoke stops the
token's next request.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from agentfleet import validate
from agentfleet.errors import InvalidArgument
from agentfleet.store.dialect import Dialect

PREFIX = "aft_"
# From the least to the most allowed.
ROLES = ("worker", "read", "operate", "admin")
ROLE_RANK = {role: rank for rank, role in enumerate(ROLES)}
ID_CHARS = 12
USED_EVERY = 60.0  # last_used_at is written at most once a minute per token

_COLUMNS = "id, name, role, created_at, last_used_at, revoked_at"


@dataclass(frozen=True)
class TokenInfo:
    """A stored token, without its secret."""

    id: str
    name: str
    role: str
    created_at: datetime
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None

    @property
    def live(self) -> bool:
        return self.revoked_at is None


def check_role(role: object) -> str:
    if not isinstance(role, str) or role not in ROLE_RANK:
        raise InvalidArgument(f"role {role!r}: choose one of {', '.join(ROLES)}")
    return role


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def split_token(text: str) -> tuple[str, str] | None:
    """The (id, secret) of ``aft_<id>_<secret>``; None when it is not of that form."""
    if not text.startswith(PREFIX):
        return None
    token_id, sep, secret = text[len(PREFIX) :].partition("_")
    if not sep or len(token_id) != ID_CHARS or not secret:
        return None
    if any(ch not in "0123456789abcdef" for ch in token_id):
        return None
    return token_id, secret


def looks_like_token(text: str) -> bool:
    return split_token(text) is not None


class Tokens:
    """The tokens table of one store."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect

    def _info(self, row: dict[str, Any]) -> TokenInfo:
        time_in = self.dialect.time_in
        created = time_in(row["created_at"])
        assert created is not None
        return TokenInfo(
            str(row["id"]),
            str(row["name"]),
            str(row["role"]),
            created,
            time_in(row["last_used_at"]),
            time_in(row["revoked_at"]),
        )

    def create(self, name: str, role: str) -> tuple[TokenInfo, str]:
        """A new token: its row, and the token text (shown once, never stored)."""
        name = validate.name(name, "the token's name")
        role = check_role(role)
        token_id = secrets.token_hex(ID_CHARS // 2)
        secret = secrets.token_urlsafe(32)
        params = {"id": token_id, "name": name, "role": role, "hash": hash_secret(secret)}
        try:
            with self.dialect.tx() as tx:
                row = tx.one(
                    "INSERT INTO tokens (id, name, role, secret_hash, created_at) "
                    f"VALUES (:id, :name, :role, :hash, {{now}}) RETURNING {_COLUMNS}",
                    params,
                )
        except Exception as exc:
            if self.dialect.is_unique_violation(exc):
                raise InvalidArgument(
                    f"{name!r} is already the name of a live token: revoke that one first "
                    f"(agentfleet tokens revoke {name}) or choose another name"
                ) from exc
            raise
        assert row is not None
        return self._info(row), f"{PREFIX}{token_id}_{secret}"

    def all(self) -> list[TokenInfo]:
        with self.dialect.session() as tx:
            rows = tx.q(f"SELECT {_COLUMNS} FROM tokens ORDER BY created_at, id")
        return [self._info(r) for r in rows]

    def revoke(self, name_or_id: str) -> TokenInfo | None:
        """Revoke the live token of this name (else of this id); None when there is none."""
        with self.dialect.tx() as tx:
            for column in ("name", "id"):
                row = tx.one(
                    "UPDATE tokens SET revoked_at = {now} "
                    f"WHERE {column} = :key AND revoked_at IS NULL RETURNING {_COLUMNS}",
                    {"key": name_or_id},
                )
                if row is not None:
                    return self._info(row)
        return None

    def lookup(self, text: str) -> TokenInfo | None:
        """The live token this text is; None for a revoked, unknown or malformed one."""
        parts = split_token(text)
        if parts is None:
            return None
        token_id, secret = parts
        with self.dialect.session() as tx:
            row = tx.one(
                f"SELECT {_COLUMNS}, secret_hash FROM tokens WHERE id = :id", {"id": token_id}
            )
        if row is None:
            hmac.compare_digest(hash_secret(secret), hash_secret(""))  # the same work
            return None
        if not hmac.compare_digest(hash_secret(secret), str(row["secret_hash"])):
            return None
        info = self._info(row)
        return info if info.live else None

    def live(self, token_id: str) -> TokenInfo | None:
        """The token of this id, if it is still live (a session's check on each request)."""
        with self.dialect.session() as tx:
            row = tx.one(
                f"SELECT {_COLUMNS} FROM tokens WHERE id = :id AND revoked_at IS NULL",
                {"id": token_id},
            )
        return None if row is None else self._info(row)

    def touch(self, token_id: str) -> None:
        """Stamp the token as used now, unless that was done within USED_EVERY."""
        with self.dialect.statement() as tx:
            tx.q(
                "UPDATE tokens SET last_used_at = {now} WHERE id = :id "
                "AND (last_used_at IS NULL OR last_used_at < {now-:every})",
                {"id": token_id, "every": USED_EVERY},
            )
